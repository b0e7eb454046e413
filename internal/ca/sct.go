package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // #nosec: subject key identifiers (RFC 5280 4.2.1.2), not a security use
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
)

func sha1Sum(b []byte) []byte {
	s := sha1.Sum(b)
	return s[:]
}

// logID is the RFC 6962 log ID of a CT key: SHA-256 of its PKIX DER.
func logID(pub crypto.PublicKey) ([32]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [32]byte{}, fmt.Errorf("couldn't encode CT key: %w", err)
	}
	return sha256.Sum256(der), nil
}

// embeddedSCT signs an RFC 6962 SCT for the precertificate pre, timestamped
// at, and returns the SCT list extension that carries it in the final
// certificate.
func (a *Authority) embeddedSCT(pre *x509.Certificate, at time.Time) (pkix.Extension, error) {
	tbs, err := ctx509.RemoveCTPoison(pre.RawTBSCertificate)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("couldn't read precertificate: %w", err)
	}
	ts := uint64(at.UnixMilli())
	entry := ct.LogEntry{Leaf: ct.MerkleTreeLeaf{
		Version:  ct.V1,
		LeafType: ct.TimestampedEntryLeafType,
		TimestampedEntry: &ct.TimestampedEntry{
			Timestamp: ts,
			EntryType: ct.PrecertLogEntryType,
			PrecertEntry: &ct.PreCert{
				IssuerKeyHash:  sha256.Sum256(a.cfg.Chain[0].RawSubjectPublicKeyInfo),
				TBSCertificate: tbs,
			},
		},
	}}
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.V1, LogID: ct.LogID{KeyID: a.ctLogID}, Timestamp: ts}
	input, err := ct.SerializeSCTSignatureInput(sct, entry)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("couldn't encode SCT: %w", err)
	}
	if sct.Signature, err = digitallySign(a.cfg.CTKey, input); err != nil {
		return pkix.Extension{}, err
	}
	raw, err := cttls.Marshal(sct)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("couldn't encode SCT: %w", err)
	}
	list, err := cttls.Marshal(ctx509.SignedCertificateTimestampList{SCTList: []ctx509.SerializedSCT{{Val: raw}}})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("couldn't encode SCT list: %w", err)
	}
	val, err := asn1.Marshal(list)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidCTSignedTimestampsList, Value: val}, nil
}

// digitallySign is RFC 5246's DigitallySigned over input with SHA-256.
func digitallySign(key crypto.Signer, input []byte) (ct.DigitallySigned, error) {
	var alg cttls.SignatureAlgorithm
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		alg = cttls.ECDSA
	case *rsa.PublicKey:
		alg = cttls.RSA
	default:
		return ct.DigitallySigned{}, fmt.Errorf("CT key of type %T cannot sign SCTs (ECDSA or RSA)", key.Public())
	}
	sum := sha256.Sum256(input)
	sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return ct.DigitallySigned{}, fmt.Errorf("couldn't sign SCT: %w", err)
	}
	return ct.DigitallySigned{Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: alg}, Signature: sig}, nil
}
