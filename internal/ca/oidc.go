package ca

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/custody-dev/custody/internal/jwks"
)

// MaxTokenBytes bounds an ID token.
const MaxTokenBytes = 16 << 10

// trustedIssuer is an Issuer with its verifier.
type trustedIssuer struct {
	Issuer
	verifier *oidc.IDTokenVerifier
}

func newTrustedIssuer(iss Issuer, hc *http.Client, now func() time.Time) (*trustedIssuer, error) {
	ks := jwks.New(iss.URL, hc, now)
	if iss.JWKSFile != "" {
		b, err := readLimited(iss.JWKSFile, jwks.MaxBytes)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: couldn't read JWKS file: %w", iss.URL, err)
		}
		if ks, err = jwks.Static(iss.URL, b); err != nil {
			return nil, fmt.Errorf("issuer %s: %s: %w", iss.URL, iss.JWKSFile, err)
		}
	}
	v := oidc.NewVerifier(iss.URL, ks, &oidc.Config{ClientID: iss.Audience, SupportedSigningAlgs: jwks.AlgNames(), Now: now})
	return &trustedIssuer{Issuer: iss, verifier: v}, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}

// unverifiedIssuer reads the iss claim of a JWT without verifying it, to
// pick the issuer entry that will verify it.
func unverifiedIssuer(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: not a signed JWT", ErrToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("%w: payload is not base64url", ErrToken)
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Iss == "" {
		return "", fmt.Errorf("%w: payload has no iss claim", ErrToken)
	}
	return c.Iss, nil
}

// errRedirect refuses redirects from issuers.
var errRedirect = errors.New("issuers' discovery documents and key sets are not read through redirects")

// NewHTTPClient is the default client for reaching issuers: no redirects,
// a 10 s timeout.
func NewHTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect }}
}
