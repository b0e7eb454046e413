package trust

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"time"

	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// SigningConfigMediaType is the media type of the documents
// MarshalSigningConfigJSON writes: Sigstore's SigningConfig v0.2.
const SigningConfigMediaType = root.SigningConfigMediaType02

// Major API versions of the services a signing config names, as Sigstore
// clients select them.
const (
	apiRekorV2 = 2 // custody's log speaks the Rekor v2 write API
	apiTSA     = 1 // RFC 3161 over HTTP
	apiFulcio  = 1 // Fulcio's v2 REST API is major API version 1
)

// MarshalSigningConfigJSON writes the Sigstore signing config
// (https://github.com/sigstore/protobuf-specs, message
// dev.sigstore.trustroot.v1.SigningConfig, media type SigningConfigMediaType)
// that sends a stock Sigstore client (cosign sign-blob --signing-config,
// sigstore-go) to the services of r: every transparency log as a Rekor v2
// log at its base URL, every timestamp authority at its URI, and every
// certificate authority that has a URI as a Fulcio instance; each with the
// validity window the trusted root gives it. A client picks any one log and
// any one TSA. The services a client writes to without a token must be
// open on the server (custody serve --open-writes log,tsa).
//
// r must name at least one log or TSA with a URL; CT logs and keys play no
// part.
func (r *Root) MarshalSigningConfigJSON() ([]byte, error) {
	var logs, tsas, cas []root.Service
	for _, l := range r.Tlogs {
		if l.BaseURL != "" {
			logs = append(logs, service(l.BaseURL, apiRekorV2, l.Window))
		}
	}
	for _, t := range r.TSAs {
		if t.URI != "" {
			tsas = append(tsas, service(t.URI, apiTSA, t.Window))
		}
	}
	for _, ca := range r.CertificateAuthorities {
		if ca.URI != "" {
			cas = append(cas, service(ca.URI, apiFulcio, ca.Window))
		}
	}
	if len(logs)+len(tsas) == 0 {
		return nil, errors.New("the trusted root names no transparency log or timestamp authority with a URL")
	}
	any := root.ServiceConfiguration{Selector: prototrustroot.ServiceSelector_ANY}
	sc, err := root.NewSigningConfig(SigningConfigMediaType, cas, nil, logs, any, tsas, any)
	if err != nil {
		return nil, err
	}
	b, err := sc.MarshalJSON()
	if err != nil {
		return nil, err
	}
	// protojson varies its whitespace from run to run; the file should not.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// service is a signing config entry: the service at u, speaking major API
// version v, valid in w. Its operator is u's host.
func service(u string, v uint32, w Window) root.Service {
	s := root.Service{URL: u, MajorAPIVersion: v, ValidityPeriodStart: w.Start}
	if pu, err := url.Parse(u); err == nil {
		s.Operator = pu.Host
	}
	if !w.End.IsZero() {
		s.ValidityPeriodEnd = w.lastInstant()
	}
	if s.ValidityPeriodStart.IsZero() {
		s.ValidityPeriodStart = time.Unix(0, 0).UTC() // Sigstore clients need a start
	}
	return s
}
