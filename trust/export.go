package trust

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MarshalTrustedRootJSON returns r as a Sigstore trusted_root.json of media
// type TrustedRootMediaType, indented with two spaces. The output is
// deterministic: the same Root always gives the same bytes. Keys are not in
// it (see the package documentation); use TrustedMaterial to verify
// key-signed bundles.
func (r *Root) MarshalTrustedRootJSON() ([]byte, error) {
	pb, err := r.toProto()
	if err != nil {
		return nil, err
	}
	raw, err := protojson.Marshal(pb)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode trusted root: %w", err)
	}
	// protojson deliberately varies its whitespace between runs; normalise it
	// so that exported roots can be compared, hashed and signed.
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, fmt.Errorf("couldn't normalise trusted root: %w", err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("couldn't normalise trusted root: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// TrustedMaterial returns r as sigstore-go trust material for
// verify.NewVerifier: the trusted root MarshalTrustedRootJSON writes, plus
// the Keys whose Role signs evidence (Role.SignsEvidence), each found by its
// ID (the bundle's key hint) and valid only in its effective window
// (Key.Effective: the Window, ended at CompromisedSince when revoked).
// Admin, log and TSA keys are left out: they never sign artifacts.
func (r *Root) TrustedMaterial() (root.TrustedMaterial, error) {
	pb, err := r.toProto()
	if err != nil {
		return nil, err
	}
	tr, err := root.NewTrustedRootFromProtobuf(pb)
	if err != nil {
		return nil, fmt.Errorf("couldn't build trusted root: %w", err)
	}
	keys, err := r.keyMaterial()
	if err != nil {
		return nil, err
	}
	return root.TrustedMaterialCollection{tr, keys}, nil
}

func (r *Root) keyMaterial() (*root.TrustedPublicKeyMaterial, error) {
	m := make(map[string]*root.ExpiringKey, len(r.Keys))
	for i := range r.Keys {
		k := &r.Keys[i]
		if err := checkPublicKey(k.PublicKey); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if err := k.Window.validate(); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		id, err := k.keyID()
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if _, dup := m[id]; dup {
			return nil, fmt.Errorf("key %d: duplicate key ID %q", i, id)
		}
		v, err := signature.LoadDefaultVerifier(k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("key %d: couldn't load verifier: %w", i, err)
		}
		if k.Role != "" {
			if _, err := ParseRole(string(k.Role)); err != nil {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
		}
		if !k.Role.SignsEvidence() {
			m[id] = nil // reserved, so IDs stay unique across roles
			continue
		}
		m[id] = k.Effective().ExpiringKey(v)
	}
	for id, k := range m {
		if k == nil {
			delete(m, id)
		}
	}
	return root.NewTrustedPublicKeyMaterialFromMapping(m), nil
}

func (r *Root) toProto() (*prototrustroot.TrustedRoot, error) {
	pb := &prototrustroot.TrustedRoot{MediaType: TrustedRootMediaType}
	var err error
	if pb.Tlogs, err = logsToProto("tlog", r.Tlogs); err != nil {
		return nil, err
	}
	if pb.Ctlogs, err = logsToProto("ctlog", r.CTLogs); err != nil {
		return nil, err
	}
	for i, ca := range r.CertificateAuthorities {
		p, err := authorityToProto(ca.URI, ca.Chain, ca.Window)
		if err != nil {
			return nil, fmt.Errorf("certificate authority %d (%s): %w", i, ca.URI, err)
		}
		pb.CertificateAuthorities = append(pb.CertificateAuthorities, p)
	}
	for i, tsa := range r.TSAs {
		p, err := authorityToProto(tsa.URI, tsa.Chain, tsa.Window)
		if err != nil {
			return nil, fmt.Errorf("timestamp authority %d (%s): %w", i, tsa.URI, err)
		}
		if tsa.Chain[0].IsCA {
			return nil, fmt.Errorf("timestamp authority %d (%s): chain must start with the TSA's leaf certificate", i, tsa.URI)
		}
		pb.TimestampAuthorities = append(pb.TimestampAuthorities, p)
	}
	return pb, nil
}

func logsToProto(kind string, logs []TransparencyLog) ([]*prototrustroot.TransparencyLogInstance, error) {
	var out []*prototrustroot.TransparencyLogInstance
	seen := map[string]bool{}
	for i := range logs {
		l := &logs[i]
		if err := checkPublicKey(l.PublicKey); err != nil {
			return nil, fmt.Errorf("%s %d (%s): %w", kind, i, l.BaseURL, err)
		}
		if l.Window.Start.IsZero() {
			return nil, fmt.Errorf("%s %d (%s): window needs a start", kind, i, l.BaseURL)
		}
		if err := l.Window.validate(); err != nil {
			return nil, fmt.Errorf("%s %d (%s): %w", kind, i, l.BaseURL, err)
		}
		details, err := keyDetails(l.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%s %d (%s): %w", kind, i, l.BaseURL, err)
		}
		der, err := x509.MarshalPKIXPublicKey(l.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%s %d (%s): couldn't encode public key: %w", kind, i, l.BaseURL, err)
		}
		id, err := l.logID()
		if err != nil {
			return nil, fmt.Errorf("%s %d (%s): %w", kind, i, l.BaseURL, err)
		}
		if seen[string(id)] {
			return nil, fmt.Errorf("%s %d (%s): duplicate log ID %x", kind, i, l.BaseURL, id)
		}
		seen[string(id)] = true
		out = append(out, &prototrustroot.TransparencyLogInstance{
			BaseUrl:       l.BaseURL,
			HashAlgorithm: protocommon.HashAlgorithm_SHA2_256,
			PublicKey: &protocommon.PublicKey{
				RawBytes:   der,
				KeyDetails: details,
				ValidFor:   windowToProto(l.Window),
			},
			LogId: &protocommon.LogId{KeyId: id},
		})
	}
	return out, nil
}

func authorityToProto(uri string, chain []*x509.Certificate, w Window) (*prototrustroot.CertificateAuthority, error) {
	if len(chain) == 0 {
		return nil, errors.New("certificate chain is empty")
	}
	if err := w.validate(); err != nil {
		return nil, err
	}
	p := &prototrustroot.CertificateAuthority{
		Uri:       uri,
		CertChain: &protocommon.X509CertificateChain{},
		ValidFor:  windowToProto(w),
	}
	for i, c := range chain {
		if c == nil || len(c.Raw) == 0 {
			return nil, fmt.Errorf("certificate %d is missing", i)
		}
		if i+1 < len(chain) && chain[i+1] != nil {
			if err := c.CheckSignatureFrom(chain[i+1]); err != nil {
				return nil, fmt.Errorf("certificate %d is not signed by certificate %d: %w", i, i+1, err)
			}
		}
		p.CertChain.Certificates = append(p.CertChain.Certificates, &protocommon.X509Certificate{RawBytes: c.Raw})
	}
	rootCert := chain[len(chain)-1]
	p.Subject = &protocommon.DistinguishedName{CommonName: rootCert.Subject.CommonName}
	if len(rootCert.Subject.Organization) > 0 {
		p.Subject.Organization = rootCert.Subject.Organization[0]
	}
	return p, nil
}

// windowToProto returns nil for a window open on both sides.
func windowToProto(w Window) *protocommon.TimeRange {
	if w.Start.IsZero() && w.End.IsZero() {
		return nil
	}
	tr := &protocommon.TimeRange{}
	if !w.Start.IsZero() {
		tr.Start = timestamppb.New(w.Start)
	}
	if !w.End.IsZero() {
		tr.End = timestamppb.New(w.lastInstant()) // Sigstore's end is closed
	}
	return tr
}

func keyDetails(pub crypto.PublicKey) (protocommon.PublicKeyDetails, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, nil
		case elliptic.P384():
			return protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384, nil
		case elliptic.P521():
			return protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512, nil
		}
	case ed25519.PublicKey:
		return protocommon.PublicKeyDetails_PKIX_ED25519, nil
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256, nil
		case 3072:
			return protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256, nil
		case 4096:
			return protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256, nil
		}
		return 0, fmt.Errorf("RSA log keys must be 2048, 3072 or 4096 bits, not %d", k.N.BitLen())
	}
	return 0, fmt.Errorf("unsupported log key type %T", pub)
}
