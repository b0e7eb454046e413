package api

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The Decode functions parse a server's answers for a client that does not
// trust the server: an answer that is not the documented JSON, or that
// breaks the route's ordering rules, is an error with a one-line message.

// DecodeSearchResponse parses an answer of GET /api/v1/evidence asked with
// after: its records must come in increasing ID order above after, and
// Next, when set, must not point back into the page, so that a server
// cannot loop a client that follows it.
func DecodeSearchResponse(b []byte, after int64) (*SearchResponse, error) {
	var page SearchResponse
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, errors.New("server answered a malformed search response")
	}
	last := after
	for _, e := range page.Evidence {
		if e.ID <= last {
			return nil, fmt.Errorf("server answered evidence %d out of order (after %d)", e.ID, last)
		}
		last = e.ID
	}
	if page.Next != 0 && (len(page.Evidence) == 0 || page.Next < last) {
		return nil, fmt.Errorf("server answered a continuation (%d) that does not follow its page", page.Next)
	}
	return &page, nil
}

// DecodePushAnswer parses an answer of POST /api/v1/evidence.
func DecodePushAnswer(b []byte) (*PushAnswer, error) {
	var a PushAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, errors.New("server answered a malformed push response")
	}
	return &a, nil
}

// DecodeSignAnswer parses an answer of POST /api/v1/sign; the bundle is
// still to be verified.
func DecodeSignAnswer(b []byte) (*SignAnswer, error) {
	var a SignAnswer
	if err := json.Unmarshal(b, &a); err != nil || len(a.Bundle) == 0 {
		return nil, errors.New("server answered a malformed sign response")
	}
	return &a, nil
}

// DecodeTokenList parses an answer of GET /api/v1/tokens.
func DecodeTokenList(b []byte) (*TokenList, error) {
	var l TokenList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("server answered a malformed token list: %w", err)
	}
	return &l, nil
}

// DecodeTokenStatus parses an answer of POST /api/v1/tokens/revoke.
func DecodeTokenStatus(b []byte) (*TokenStatus, error) {
	var st TokenStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("server answered a malformed token: %w", err)
	}
	return &st, nil
}

// DecodePolicyPushAnswer parses an answer of POST /api/v1/policies for the
// policy of digest: the server must name the policy it was sent.
func DecodePolicyPushAnswer(b []byte, digest string) (*PolicyPushAnswer, error) {
	var a PolicyPushAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.Digest != digest {
		return nil, errors.New("server answered a malformed policy push response")
	}
	return &a, nil
}

// DecodeTrustPushAnswer parses an answer of POST /api/v1/trust-root for
// version: the server must name that version.
func DecodeTrustPushAnswer(b []byte, version int) (*TrustPushAnswer, error) {
	var a TrustPushAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.Version != version {
		return nil, errors.New("server answered a malformed trust root push response")
	}
	return &a, nil
}
