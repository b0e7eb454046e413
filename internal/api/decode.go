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

// DecodeDeploymentPage parses an answer of GET /api/v1/deployments asked
// with after: records in increasing ID order above after.
func DecodeDeploymentPage(b []byte, after int64) (*DeploymentPage, error) {
	var page DeploymentPage
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, errors.New("server answered a malformed deployments response")
	}
	for _, d := range page.Deployments {
		if d == nil || d.ID <= after {
			return nil, errors.New("server answered deployments out of order")
		}
		after = d.ID
	}
	return &page, nil
}

// DecodeIncidentPage parses an answer of GET /api/v1/incidents asked with
// after and limit: at most limit records, in increasing ID order above
// after.
func DecodeIncidentPage(b []byte, after int64, limit int) (*IncidentPage, error) {
	var page IncidentPage
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, errors.New("server answered a malformed incidents response")
	}
	if len(page.Records) > limit {
		return nil, errors.New("server answered more incident records than asked for")
	}
	for _, r := range page.Records {
		if r == nil || r.ID <= after {
			return nil, errors.New("server answered incident records out of order")
		}
		after = r.ID
	}
	return &page, nil
}

// DecodeIDAnswer parses the answer of an append of one record (what is
// "deployment" or "incident"): a positive ID.
func DecodeIDAnswer(b []byte, what string) (int64, error) {
	var a IDAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.ID <= 0 {
		return 0, fmt.Errorf("server answered a malformed %s response", what)
	}
	return a.ID, nil
}

// DecodeIDsAnswer parses the answer of a batch of n incident records: n
// positive IDs in increasing order.
func DecodeIDsAnswer(b []byte, n int) ([]int64, error) {
	var a IDsAnswer
	if err := json.Unmarshal(b, &a); err != nil || len(a.IDs) != n {
		return nil, errors.New("server answered a malformed incident response")
	}
	for i, id := range a.IDs {
		if id <= 0 || (i > 0 && id <= a.IDs[i-1]) {
			return nil, errors.New("server answered a malformed incident response")
		}
	}
	return a.IDs, nil
}
