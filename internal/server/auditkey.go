package server

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/keyid"
)

// Evidence signed by the audit key (audit entries, decisions, red flags
// statements) is made by the server alone, on its own paths (audit.go,
// sign.go, redflags.go). No client route takes such evidence from a
// client, whatever its type: a replay of the server's own decision, or a
// statement signed with a leaked copy of the key, would otherwise be
// indexed as the server's word (POST /api/v1/evidence), and the log
// refuses the audit key's entries the same way (checkLogRequest).

// errAuditKeyBundle is wrapped by checkAuditKeyBundle's error: the pushed
// bundle is signed by, or names, the server's audit key. Handlers answer
// 403.
var errAuditKeyBundle = errors.New("evidence signed by the server's audit key is made only by the server")

// errSignatureCount is wrapped by checkAuditKeyBundle's error for a DSSE
// envelope with other than one signature, which a Sigstore bundle never
// has. Handlers answer 400.
var errSignatureCount = errors.New("a bundle's DSSE envelope has exactly one signature")

// checkAuditKeyBundle refuses a pushed Sigstore bundle (JSON) that the
// audit key signed or that names the audit key: its key hint is the audit
// key's ID (in either spelling, or the ID the trust root gives that key),
// its certificate (or the chain's first) holds the audit key, or its
// signature verifies under the audit key whatever the bundle names (a
// signature moved under another hint or certificate). The error wraps
// errAuditKeyBundle, or errSignatureCount for an envelope of more than
// one signature (so the check costs one verification per bundle). A bundle
// that does not parse is left to checkBundle.
func (s *Server) checkAuditKeyBundle(bundleJSON []byte) error {
	pb := new(protobundle.Bundle)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(bundleJSON, pb); err != nil {
		return nil
	}
	audit := s.auditKey.Public()
	vm := pb.GetVerificationMaterial()
	if hint := vm.GetPublicKey().GetHint(); hint != "" && s.isAuditKeyHint(hint) {
		return fmt.Errorf("its key hint names the audit key: %w", errAuditKeyBundle)
	}
	certs := [][]byte{vm.GetCertificate().GetRawBytes()}
	if chain := vm.GetX509CertificateChain().GetCertificates(); len(chain) > 0 {
		certs = append(certs, chain[0].GetRawBytes())
	}
	for _, der := range certs {
		if len(der) == 0 {
			continue
		}
		if c, err := x509.ParseCertificate(der); err == nil && samePublicKey(c.PublicKey, audit) {
			return fmt.Errorf("its certificate holds the audit key: %w", errAuditKeyBundle)
		}
	}
	v, err := signature.LoadDefaultVerifier(audit)
	if err != nil {
		return fmt.Errorf("couldn't load the audit key's verifier: %w", err)
	}
	switch c := pb.GetContent().(type) {
	case *protobundle.Bundle_DsseEnvelope:
		env := c.DsseEnvelope
		sigs := env.GetSignatures()
		if len(sigs) > 1 {
			return fmt.Errorf("bundle rejected: %d signatures: %w", len(sigs), errSignatureCount)
		}
		pae := dsse.PAE(env.GetPayloadType(), env.GetPayload())
		for _, sig := range sigs {
			if v.VerifySignature(bytes.NewReader(sig.GetSig()), bytes.NewReader(pae)) == nil {
				return fmt.Errorf("its signature is the audit key's: %w", errAuditKeyBundle)
			}
		}
	case *protobundle.Bundle_MessageSignature:
		ms := c.MessageSignature
		digest := ms.GetMessageDigest().GetDigest()
		if len(digest) > 0 && v.VerifySignature(bytes.NewReader(ms.GetSignature()), nil, options.WithDigest(digest)) == nil {
			return fmt.Errorf("its signature is the audit key's: %w", errAuditKeyBundle)
		}
	}
	return nil
}

// isAuditKeyHint reports whether a bundle's key hint names the audit key:
// its key ID in either spelling (keyid.Parse), or an ID under which the
// current trust root lists the audit key.
func (s *Server) isAuditKeyHint(hint string) bool {
	audit := s.auditKey.Public()
	if id, err := keyid.Parse(hint); err == nil {
		if own, err := keyid.Of(audit); err == nil && id == own {
			return true
		}
	}
	if doc := s.TrustRootDocument(); doc != nil {
		for _, k := range doc.Root.Keys {
			if k.ID == hint && samePublicKey(k.PublicKey, audit) {
				return true
			}
		}
	}
	return false
}
