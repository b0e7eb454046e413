package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"time"
)

// Sentinel errors; see the package documentation.
var (
	ErrToken   = errors.New("identity token refused")
	ErrDenied  = errors.New("identity not allowed")
	ErrRequest = errors.New("certificate request refused")
)

// DefaultValidity is how long certificates are valid.
const DefaultValidity = 10 * time.Minute

// Config configures an Authority.
type Config struct {
	// Issuers are the trusted OIDC issuers (ParseIssuers). Required.
	Issuers []Issuer
	// Key signs certificates; Chain is its certificate chain, the CA's
	// own certificate first, the root last (GenerateChain makes a
	// self-signed one). Required.
	Key   crypto.Signer
	Chain []*x509.Certificate
	// CTKey signs the SCTs embedded in certificates. Required.
	CTKey crypto.Signer
	// Record durably records the precertificate of every certificate
	// before it is issued (custody serve: an audit entry in its log); an
	// error refuses the certificate. Required.
	Record func(ctx context.Context, p *Principal, precert *x509.Certificate) error
	// Validity of certificates. Default DefaultValidity.
	Validity time.Duration
	// HTTPClient reaches issuers for discovery and JWKS. Default
	// NewHTTPClient().
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Authority issues code-signing certificates. It is safe for concurrent
// use.
type Authority struct {
	cfg     Config
	issuers map[string]*trustedIssuer
	ctLogID [32]byte
}

// New checks cfg and returns its Authority. Issuers' JWKS are fetched on
// first use, so a server starts while an issuer is unreachable.
func New(cfg Config) (*Authority, error) {
	switch {
	case cfg.Key == nil || len(cfg.Chain) == 0:
		return nil, errors.New("certificate authority needs a key and its certificate chain")
	case cfg.CTKey == nil:
		return nil, errors.New("certificate authority needs a certificate transparency key")
	case cfg.Record == nil:
		return nil, errors.New("certificate authority needs a recorder")
	case len(cfg.Issuers) == 0:
		return nil, errors.New("certificate authority trusts no issuer")
	}
	if !samePublicKey(cfg.Key.Public(), cfg.Chain[0].PublicKey) {
		return nil, errors.New("the CA key is not the key of the first certificate of its chain")
	}
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultValidity
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = NewHTTPClient()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authority{cfg: cfg, issuers: map[string]*trustedIssuer{}}
	for _, iss := range cfg.Issuers {
		if err := iss.validate(); err != nil {
			return nil, err
		}
		ti, err := newTrustedIssuer(iss, cfg.HTTPClient, cfg.Now)
		if err != nil {
			return nil, err
		}
		a.issuers[iss.URL] = ti
	}
	id, err := logID(cfg.CTKey.Public())
	if err != nil {
		return nil, err
	}
	a.ctLogID = id
	return a, nil
}

// Chain returns the CA's certificate chain, the CA first, the root last.
func (a *Authority) Chain() []*x509.Certificate { return a.cfg.Chain }

// CTPublicKey returns the key that verifies the authority's SCTs.
func (a *Authority) CTPublicKey() crypto.PublicKey { return a.cfg.CTKey.Public() }

// Verify verifies an OIDC ID token against the issuer entry of its iss
// claim and returns the principal it names. Errors wrap ErrToken or
// ErrDenied.
func (a *Authority) Verify(ctx context.Context, raw string) (*Principal, error) {
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: token is over %d bytes", ErrToken, MaxTokenBytes)
	}
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return nil, err
	}
	ti, ok := a.issuers[iss]
	if !ok {
		return nil, fmt.Errorf("%w: issuer %q is not trusted", ErrToken, iss)
	}
	tok, err := ti.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrToken, err)
	}
	var m map[string]any
	if err := tok.Claims(&m); err != nil {
		return nil, fmt.Errorf("%w: claims are malformed", ErrToken)
	}
	p, err := principal(&ti.Issuer, tok.Subject, tok.Expiry, m)
	if err != nil {
		return nil, err
	}
	if err := ti.allows(p); err != nil {
		return nil, err
	}
	if err := ti.checkMFA(p, m); err != nil {
		return nil, err
	}
	return p, nil
}

// Issued is a certificate the authority issued.
type Issued struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate // the CA's chain, CA first
}

// Issue makes the certificate of pub for p (verified by Verify, its key
// checked by CheckProof): it records the precertificate (Config.Record),
// signs an SCT over it and issues the final certificate with the SCT
// embedded.
func (a *Authority) Issue(ctx context.Context, p *Principal, pub crypto.PublicKey) (*Issued, error) {
	now := a.cfg.Now().UTC().Truncate(time.Second)
	tmpl, err := a.template(p, pub, now)
	if err != nil {
		return nil, err
	}
	preTmpl := *tmpl
	preTmpl.ExtraExtensions = append(append([]pkix.Extension(nil), tmpl.ExtraExtensions...),
		pkix.Extension{Id: oidCTPoison, Critical: true, Value: asn1.NullBytes})
	preDER, err := x509.CreateCertificate(rand.Reader, &preTmpl, a.cfg.Chain[0], pub, a.cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign precertificate: %w", err)
	}
	pre, err := x509.ParseCertificate(preDER)
	if err != nil {
		return nil, err
	}
	if err := a.cfg.Record(ctx, p, pre); err != nil {
		return nil, fmt.Errorf("couldn't record certificate: %w", err)
	}
	sctExt, err := a.embeddedSCT(pre, a.cfg.Now())
	if err != nil {
		return nil, err
	}
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, sctExt)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cfg.Chain[0], pub, a.cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Chain: a.cfg.Chain}, nil
}

// template is the certificate for p and pub, from now for the validity.
func (a *Authority) template(p *Principal, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, err
	}
	exts, err := renderExtensions(p.Extensions)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(a.cfg.Validity)
	if ca := a.cfg.Chain[0]; notAfter.After(ca.NotAfter) {
		return nil, fmt.Errorf("the CA certificate expires at %s", ca.NotAfter.Format(time.RFC3339))
	}
	t := &x509.Certificate{
		SerialNumber:    serial.Add(serial, big.NewInt(1)),
		NotBefore:       now,
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: exts,
	}
	if p.Email {
		t.EmailAddresses = []string{p.SAN}
	} else {
		u, err := url.Parse(p.SAN)
		if err != nil {
			return nil, fmt.Errorf("%w: SAN %q is not a URI", ErrToken, p.SAN)
		}
		t.URIs = []*url.URL{u}
	}
	return t, nil
}
