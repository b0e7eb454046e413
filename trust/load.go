package trust

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// ErrMalformed is returned (wrapped) by LoadTrustedRoot for a document that
// is not a trusted_root.json sigstore-go accepts.
var ErrMalformed = errors.New("malformed trusted root")

// LoadTrustedRoot parses a Sigstore trusted_root.json of media type
// TrustedRootMediaType. It accepts exactly what sigstore-go's
// root.NewTrustedRootFromJSON accepts and returns a Root without Keys (a
// trusted_root.json has none). Log keys in the legacy PKCS#1 RSA encoding are
// returned as *rsa.PublicKey; MarshalTrustedRootJSON writes them back as PKIX.
func LoadTrustedRoot(b []byte) (*Root, error) {
	pb, err := root.NewTrustedRootProtobuf(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := root.NewTrustedRootFromProtobuf(pb); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	r := &Root{}
	if r.Tlogs, err = logsFromProto("tlog", pb.GetTlogs()); err != nil {
		return nil, err
	}
	if r.CTLogs, err = logsFromProto("ctlog", pb.GetCtlogs()); err != nil {
		return nil, err
	}
	for i, ca := range pb.GetCertificateAuthorities() {
		chain, err := chainFromProto(ca.GetCertChain())
		if err != nil {
			return nil, fmt.Errorf("%w: certificate authority %d: %w", ErrMalformed, i, err)
		}
		r.CertificateAuthorities = append(r.CertificateAuthorities, CertificateAuthority{
			URI: ca.GetUri(), Chain: chain, Window: windowFromProto(ca.GetValidFor()),
		})
	}
	for i, ta := range pb.GetTimestampAuthorities() {
		chain, err := chainFromProto(ta.GetCertChain())
		if err != nil {
			return nil, fmt.Errorf("%w: timestamp authority %d: %w", ErrMalformed, i, err)
		}
		r.TSAs = append(r.TSAs, TimestampAuthority{
			URI: ta.GetUri(), Chain: chain, Window: windowFromProto(ta.GetValidFor()),
		})
	}
	return r, nil
}

func logsFromProto(kind string, in []*prototrustroot.TransparencyLogInstance) ([]TransparencyLog, error) {
	var out []TransparencyLog
	for i, l := range in {
		pk := l.GetPublicKey()
		var (
			pub any
			err error
		)
		if pk.GetKeyDetails() == protocommon.PublicKeyDetails_PKCS1_RSA_PKCS1V5 { //nolint:staticcheck // legacy, still in Sigstore staging
			pub, err = x509.ParsePKCS1PublicKey(pk.GetRawBytes())
		} else {
			pub, err = x509.ParsePKIXPublicKey(pk.GetRawBytes())
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s %d (%s): %w", ErrMalformed, kind, i, l.GetBaseUrl(), err)
		}
		out = append(out, TransparencyLog{
			BaseURL:   l.GetBaseUrl(),
			PublicKey: pub,
			LogID:     l.GetLogId().GetKeyId(),
			Window:    windowFromProto(pk.GetValidFor()),
		})
	}
	return out, nil
}

func chainFromProto(c *protocommon.X509CertificateChain) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i, raw := range c.GetCertificates() {
		cert, err := x509.ParseCertificate(raw.GetRawBytes())
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		out = append(out, cert)
	}
	return out, nil
}

func windowFromProto(tr *protocommon.TimeRange) Window {
	var w Window
	if tr.GetStart() != nil {
		w.Start = tr.GetStart().AsTime()
	}
	if tr.GetEnd() != nil {
		// Sigstore's end is closed, Window's is not.
		w.End = tr.GetEnd().AsTime().Add(time.Nanosecond)
	}
	return w
}
