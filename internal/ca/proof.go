package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
)

// checkKey refuses key types and sizes that certificates must not carry.
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s is not P-256, P-384 or P-521", ErrRequest, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return fmt.Errorf("%w: an RSA key of %d bits is refused (2048 to 8192)", ErrRequest, n)
		}
		if k.E < 3 || k.E%2 == 0 {
			return fmt.Errorf("%w: RSA exponent %d is refused", ErrRequest, k.E)
		}
		return nil
	}
	return fmt.Errorf("%w: public key of type %T is not supported", ErrRequest, pub)
}

// algorithmOf is the Fulcio API's name of pub's algorithm.
func algorithmOf(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA"
	case ed25519.PublicKey:
		return "ED25519"
	case *rsa.PublicKey:
		return "RSA_PSS"
	}
	return ""
}

// CheckProof parses the public key of a certificate request (PEM or DER
// PKIX) and checks proof, the signature over p.Challenge that proves the
// requester holds its private key (with the key type's default hash, as
// cosign and sigstore-go sign it). algorithm, when not empty or
// UNSPECIFIED, must name the key's type. Errors wrap ErrRequest.
func CheckProof(p *Principal, algorithm string, publicKey, proof []byte) (crypto.PublicKey, error) {
	der := publicKey
	if blk, _ := pem.Decode(publicKey); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%w: PEM block %q is not a PUBLIC KEY", ErrRequest, blk.Type)
		}
		der = blk.Bytes
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: public key is malformed", ErrRequest)
	}
	if err := checkKey(pub); err != nil {
		return nil, err
	}
	if a := strings.ToUpper(algorithm); a != "" && a != "PUBLIC_KEY_ALGORITHM_UNSPECIFIED" && a != algorithmOf(pub) &&
		!(a == "RSA_PSS" && algorithmOf(pub) == "RSA_PSS") {
		return nil, fmt.Errorf("%w: algorithm %s does not match the %s key", ErrRequest, algorithm, algorithmOf(pub))
	}
	if len(proof) == 0 {
		return nil, fmt.Errorf("%w: no proof of possession (a signature over the token's subject or email)", ErrRequest)
	}
	v, err := signature.LoadDefaultVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRequest, err)
	}
	if err := v.VerifySignature(bytes.NewReader(proof), strings.NewReader(p.Challenge)); err != nil {
		return nil, fmt.Errorf("%w: proof of possession does not verify: it must sign %q with the key to certify", ErrRequest, p.Challenge)
	}
	return pub, nil
}

// CheckCSR parses a certificate signing request (PEM or DER) and checks
// its self-signature, the proof of possession of its key. Errors wrap
// ErrRequest.
func CheckCSR(csrBytes []byte) (crypto.PublicKey, error) {
	der := csrBytes
	if blk, _ := pem.Decode(csrBytes); blk != nil {
		der = blk.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate signing request is malformed", ErrRequest)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: certificate signing request signature does not verify", ErrRequest)
	}
	return csr.PublicKey, nil
}

// GenerateChain makes the self-signed CA certificate of key, valid from
// now for ten years.
func GenerateChain(key crypto.Signer, now time.Time) ([]*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	skid := sha1Sum(pubDER)
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "custody certificate authority", Organization: []string{"custody"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, t, t, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("couldn't make CA certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{c}, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	x, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && x.Equal(b)
}

func raws(certs []*x509.Certificate) [][]byte {
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out
}

func pemChain(ders [][]byte) CertificateChain {
	var c CertificateChain
	for _, der := range ders {
		c.Certificates = append(c.Certificates, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	}
	return c
}
