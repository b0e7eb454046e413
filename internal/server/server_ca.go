package server

// The certificate authority (Config.CA): Fulcio's v2 API on the server's
// CA key, every certificate recorded as a ca.issued audit entry of the log
// before it is issued, and OIDC ID tokens of trusted issuers accepted as
// bearer tokens where a builder token would be (package ca).
//
//	POST /api/v2/signingCert   a token of a trusted issuer (credentials or Bearer) → Fulcio SigningCertificate
//	GET  /api/v2/trustBundle   public → the CA's chain

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// CAConfig configures the certificate authority.
type CAConfig struct {
	// Issuers are the OIDC issuers whose tokens the CA certifies
	// (ca.ParseIssuers). Required.
	Issuers []ca.Issuer
	// Key is the CA's signing key: a key file or pkcs11: URI as LogKey.
	// Default Dir/keys/ca.key, created on first start, with a self-signed
	// certificate in Dir/keys/ca-chain.pem (a given key brings its chain
	// there too, or gets a self-signed one on first start).
	Key string
	// CTKey signs the SCTs embedded in certificates, as Key. Default
	// Dir/keys/ct.key, created on first start; its public key is recorded
	// in Dir/keys/ct.pub.
	CTKey string
	// Validity of certificates. Default ca.DefaultValidity.
	Validity time.Duration
	// HTTPClient reaches issuers. Default ca.NewHTTPClient().
	HTTPClient *http.Client
}

// caFiles are where the CA's public parts live in the data directory.
const (
	caChainFile = "ca-chain.pem"
	ctPubFile   = "ct.pub"
)

// openCA opens the CA's keys and chain and starts the authority.
func (s *Server) openCA() error {
	c := s.cfg.CA
	if c == nil {
		return nil
	}
	keys := filepath.Join(s.cfg.Dir, "keys")
	key, err := s.openKey(c.Key, filepath.Join(keys, "ca.key"))
	if err != nil {
		return fmt.Errorf("CA key: %w", err)
	}
	chain, err := loadOrCreateCAChain(s.state, "keys/"+caChainFile, key, s.created)
	if err != nil {
		return err
	}
	ctKey, err := s.openKey(c.CTKey, filepath.Join(keys, "ct.key"))
	if err != nil {
		return fmt.Errorf("CT key: %w", err)
	}
	if err := recordPublicKey(s.state, "keys/"+ctPubFile, ctKey.Public(), "CT"); err != nil {
		return err
	}
	for _, iss := range c.Issuers {
		if iss.BuilderKey != "" && (iss.Audience == "" || iss.Audience == ca.DefaultAudience) {
			s.logger.Warn("an issuer entry with a builder key shares its audience with public Fulcio: a CI token a job "+
				"also sends to Fulcio (cosign keyless) is a builder token here; give the entry an audience of its own "+
				"(audience: in the issuers file) and have its jobs ask for it (custody build --identity-audience AUD)",
				"issuer", iss.URL, "builder_key", iss.BuilderKey, "audience", ca.DefaultAudience)
		}
	}
	s.ca, err = ca.New(ca.Config{Issuers: c.Issuers, Key: key, Chain: chain, CTKey: ctKey, Record: s.recordCertificate,
		Validity: c.Validity, HTTPClient: c.HTTPClient})
	if err != nil {
		return fmt.Errorf("certificate authority: %w", err)
	}
	s.caIssued = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "custody_ca_certificates_total", Help: "Signing certificates issued by the certificate authority.",
	})
	s.metrics.reg.MustRegister(s.caIssued)
	return nil
}

// loadOrCreateCAChain reads the CA chain at path of st, or makes a
// self-signed certificate for key there (replicas starting together: the
// first one stored counts). A chain whose first certificate is not key's
// is refused.
func loadOrCreateCAChain(st state.Store, path string, key crypto.Signer, created time.Time) ([]*x509.Certificate, error) {
	ctx := context.Background()
	b, err := st.Get(ctx, path)
	if errors.Is(err, os.ErrNotExist) {
		chain, err := ca.GenerateChain(key, created)
		if err != nil {
			return nil, err
		}
		if _, err := st.Create(ctx, path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0].Raw})); err != nil {
			return nil, err
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		b, err = st.Get(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read CA chain: %w", err)
	}
	chain, err := parseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !sameKey(chain[0].PublicKey, key.Public()) {
		return nil, fmt.Errorf("%s does not certify the CA key", path)
	}
	return chain, nil
}

func parseCertificates(b []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("holds no certificate")
	}
	return chain, nil
}

// recordPublicKey writes pub to path of st on first start and refuses a
// key that differs from the one recorded.
func recordPublicKey(st state.Store, path string, pub crypto.PublicKey, what string) error {
	pemBytes, err := signer.MarshalPublicKey(pub)
	if err != nil {
		return fmt.Errorf("%s key: %w", what, err)
	}
	ctx := context.Background()
	if _, err := st.Create(ctx, path, pemBytes); err != nil {
		return err
	}
	b, err := st.Get(ctx, path)
	if err != nil {
		return err
	}
	old, err := signer.ParsePublicKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !sameKey(old, pub) {
		return fmt.Errorf("the %s key is not the one recorded in %s; verifiers trust that one", what, path)
	}
	return nil
}

// caTrust is what the trusted root says of the CA: its chain and CT key.
type caTrust struct {
	chain []*x509.Certificate
	ctPub crypto.PublicKey
}

// readCATrust reads the CA's chain and CT key from st (the data
// directory, or the state replicas share); nil when the CA never ran.
func readCATrust(ctx context.Context, st state.Store) (*caTrust, error) {
	b, err := st.Get(ctx, "keys/"+caChainFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	chain, err := parseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("CA chain: %w", err)
	}
	pb, err := st.Get(ctx, "keys/"+ctPubFile)
	if err != nil {
		return nil, fmt.Errorf("couldn't read CT key: %w", err)
	}
	pub, err := signer.ParsePublicKey(pb)
	if err != nil {
		return nil, fmt.Errorf("CT key: %w", err)
	}
	return &caTrust{chain: chain, ctPub: pub}, nil
}

// addTo puts the CA and its CT log in r, trusted from created.
func (c *caTrust) addTo(r *trust.Root, publicURL string, created time.Time) {
	if c == nil {
		return
	}
	r.CertificateAuthorities = append(r.CertificateAuthorities, trust.CertificateAuthority{URI: publicURL, Chain: c.chain,
		Window: trust.Window{Start: created, End: c.chain[len(c.chain)-1].NotAfter}})
	r.CTLogs = append(r.CTLogs, trust.TransparencyLog{BaseURL: publicURL, PublicKey: c.ctPub, Window: trust.Window{Start: created}})
}

// certRecord is the detail of a ca.issued audit entry.
type certRecord struct {
	Serial         string    `json:"serial"`
	Identity       string    `json:"identity"`
	Issuer         string    `json:"issuer"`
	Subject        string    `json:"subject"`
	NotBefore      time.Time `json:"notBefore"`
	NotAfter       time.Time `json:"notAfter"`
	Precertificate []byte    `json:"precertificate"` // DER
}

// recordCertificate writes the ca.issued audit entry of a precertificate
// (ca.Config.Record): the certificate exists only once it is in the log.
func (s *Server) recordCertificate(ctx context.Context, p *ca.Principal, pre *x509.Certificate) error {
	sum := sha256.Sum256(pre.Raw)
	serial := hex.EncodeToString(pre.SerialNumber.Bytes())
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", nil)
	if err != nil {
		return err
	}
	_, err = s.audit(ctx, r, auditEvent{action: "ca.issued", actor: p.SAN,
		subjects: []attest.Subject{{Name: "custody-ca/certificate/" + serial, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		detail: certRecord{Serial: serial, Identity: p.SAN, Issuer: p.Issuer, Subject: p.Subject,
			NotBefore: pre.NotBefore, NotAfter: pre.NotAfter, Precertificate: pre.Raw}})
	return err
}

// maxSigningCertBody bounds a certificate request: a token (at most
// ca.MaxTokenBytes), a public key or CSR and a proof, base64 in JSON. The
// route authenticates nobody before reading it.
const maxSigningCertBody = 64 << 10

// serveSigningCert answers POST /api/v2/signingCert.
func (s *Server) serveSigningCert(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxSigningCertBody)
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := ca.ParseSigningCertRequest(body)
	if err != nil {
		s.failCA(w, err)
		return
	}
	raw := req.Token(r.Header.Get("Authorization"))
	if raw == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="custody"`)
		fail(w, http.StatusUnauthorized, "missing identity token (credentials.oidcIdentityToken or a Bearer header)")
		return
	}
	p, err := s.ca.Verify(r.Context(), raw)
	if err != nil {
		s.failCA(w, err)
		return
	}
	var pub crypto.PublicKey
	if len(req.CertificateSigningRequest) > 0 {
		pub, err = ca.CheckCSR(req.CertificateSigningRequest)
	} else {
		k := req.PublicKeyRequest
		pub, err = ca.CheckProof(p, k.PublicKey.Algorithm, []byte(k.PublicKey.Content), k.ProofOfPossession)
	}
	if err != nil {
		s.failCA(w, err)
		return
	}
	release, ok := s.writes.acquire(r.Context(), api.RoleBuilder, 0)
	if !ok {
		s.overloaded(w)
		return
	}
	defer release()
	// The ca.issued audit entry names the identity that asked.
	ctx := context.WithValue(r.Context(), tokenKey{}, &TokenInfo{Role: api.RoleBuilder, Name: "oidc:" + p.SAN, keyless: true, expires: p.Expiry})
	issued, err := s.ca.Issue(ctx, p, pub)
	if err != nil {
		s.failCA(w, err)
		return
	}
	s.caIssued.Inc()
	s.logger.InfoContext(r.Context(), "certificate issued", "identity", p.SAN, "issuer", p.Issuer,
		"serial", hex.EncodeToString(issued.Cert.SerialNumber.Bytes()))
	writeJSONStatus(w, http.StatusOK, issued.Response())
}

// failCA answers a refused certificate request.
func (s *Server) failCA(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ca.ErrToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="custody", error="invalid_token"`)
		fail(w, http.StatusUnauthorized, err.Error())
	case errors.Is(err, ca.ErrDenied):
		fail(w, http.StatusForbidden, err.Error())
	case errors.Is(err, ca.ErrRequest):
		fail(w, http.StatusBadRequest, err.Error())
	default:
		s.logger.Error("couldn't issue certificate", "err", err)
		s.failWrite(w, err)
	}
}

// serveTrustBundle answers GET /api/v2/trustBundle.
func (s *Server) serveTrustBundle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.ca.TrustBundle())
}

// isJWT tells an OIDC ID token (three base64url parts) from custody's own
// bearer tokens.
func isJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// lookupBearer returns the holder of a bearer token: custody's own token,
// or, with the CA on, an ID token of a trusted issuer, which counts as a
// builder token scoped to the builder key its issuer entry maps it to
// (none: it may log, timestamp and push, not use the signing service).
// Errors for refused ID tokens wrap errTokenInvalid (401) or ca.ErrDenied
// (403).
func (s *Server) lookupBearer(ctx context.Context, tok string) (*TokenInfo, error) {
	if s.ca == nil || !isJWT(tok) {
		return s.tokens.lookup(tok)
	}
	p, err := s.ca.Verify(ctx, tok)
	switch {
	case errors.Is(err, ca.ErrDenied):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errTokenInvalid, err)
	}
	return &TokenInfo{Role: api.RoleBuilder, Key: p.BuilderKey, Name: "oidc:" + p.SAN, keyless: true, expires: p.Expiry}, nil
}
