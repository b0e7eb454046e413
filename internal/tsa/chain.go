package tsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ChainValidity is how long the certificates GenerateChain makes are valid.
const ChainValidity = 10 * 365 * 24 * time.Hour

// GenerateChain makes a fresh self-signed root CA (an ECDSA P-256 key, returned
// as rootKey) and a TSA leaf certificate for signer's public key, both valid
// from now for ChainValidity. The leaf carries the critical id-kp-timeStamping
// extended key usage and digitalSignature key usage; the root may sign only
// certificates and CRLs and has a path length of zero. commonName names both
// ("<commonName> root" for the root). It is meant for embedded defaults (custody
// serve on a fresh data directory); production authorities bring their own
// chain to NewAuthority.
func GenerateChain(signer crypto.Signer, commonName string, now time.Time) (leaf, root *x509.Certificate, rootKey crypto.Signer, err error) {
	if signer == nil {
		return nil, nil, nil, errors.New("signer is nil")
	}
	if commonName == "" {
		return nil, nil, nil, errors.New("common name is empty")
	}
	if _, err := signatureHash(signer.Public()); err != nil {
		return nil, nil, nil, err
	}
	rk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("couldn't generate root key: %w", err)
	}
	// Start a little in the past so that clocks slightly behind ours accept
	// the certificates at once.
	notBefore := now.UTC().Add(-5 * time.Minute).Truncate(time.Second)
	notAfter := notBefore.Add(ChainValidity)

	rootSerial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          rootSerial,
		Subject:               pkix.Name{CommonName: commonName + " root"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rk.Public(), rk)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("couldn't create root certificate: %w", err)
	}
	root, err = x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("couldn't parse root certificate: %w", err)
	}

	// x509.CreateCertificate marks extended key usage non-critical; RFC 3161
	// section 2.3 requires it critical, so the extension is written by hand.
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidKPTimeStamping})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("couldn't encode extended key usage: %w", err)
	}
	leafSerial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:          leafSerial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  false,
		ExtraExtensions:       []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: eku}},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, signer.Public(), rk)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("couldn't create leaf certificate: %w", err)
	}
	leaf, err = x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("couldn't parse leaf certificate: %w", err)
	}
	return leaf, root, rk, nil
}

// randomSerial returns a random positive 128-bit certificate serial number.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("couldn't draw serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
