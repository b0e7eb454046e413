// Package idtoken finds the OIDC ID token a CI job proves its identity
// with, for keyless signing: given on the command line (TOKEN or @FILE),
// in SIGSTORE_ID_TOKEN (GitLab CI's id_tokens, and Sigstore's convention),
// or asked of GitHub Actions' token service
// (ACTIONS_ID_TOKEN_REQUEST_URL with ACTIONS_ID_TOKEN_REQUEST_TOKEN,
// https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect).
package idtoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment variables read by Find.
const (
	EnvSigstore            = "SIGSTORE_ID_TOKEN"
	EnvActionsRequestURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	EnvActionsRequestToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

// MaxTokenBytes bounds a token read from a file or a token service.
const MaxTokenBytes = 64 << 10

// ErrNone is returned by Find when no token is given or found.
var ErrNone = errors.New("no identity token")

// Options say where Find looks.
type Options struct {
	// Flag is the command line's value: a token, or @FILE. "" looks in the
	// environment.
	Flag string
	// Audience is asked of GitHub Actions' token service. Default
	// "sigstore".
	Audience string
	// Getenv reads the environment. Default os.Getenv.
	Getenv func(string) string
	// HTTPClient asks the token service. Default a client with a 30 s
	// timeout.
	HTTPClient *http.Client
}

// Find returns the identity token and where it came from ("flag", "file",
// SIGSTORE_ID_TOKEN or "GitHub Actions"). It returns ErrNone when there
// is none.
func Find(ctx context.Context, o Options) (tok, source string, err error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Audience == "" {
		o.Audience = "sigstore"
	}
	switch {
	case strings.HasPrefix(o.Flag, "@"):
		tok, err = readFile(o.Flag[1:])
		return tok, "file", err
	case o.Flag != "":
		return strings.TrimSpace(o.Flag), "flag", nil
	case o.Getenv(EnvSigstore) != "":
		return strings.TrimSpace(o.Getenv(EnvSigstore)), EnvSigstore, nil
	case o.Getenv(EnvActionsRequestURL) != "" && o.Getenv(EnvActionsRequestToken) != "":
		tok, err = askActions(ctx, o)
		return tok, "GitHub Actions", err
	}
	return "", "", ErrNone
}

// Available reports whether Find would look for a token in the
// environment and find one there, without asking any service.
func Available(getenv func(string) string) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	return getenv(EnvSigstore) != "" || (getenv(EnvActionsRequestURL) != "" && getenv(EnvActionsRequestToken) != "")
}

func readFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("couldn't read identity token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("couldn't read identity token: %w", err)
	}
	if len(b) > MaxTokenBytes {
		return "", fmt.Errorf("identity token file %s is over %d bytes", path, MaxTokenBytes)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("identity token file %s is empty", path)
	}
	return tok, nil
}

// askActions asks GitHub Actions' token service for a token of o.Audience.
func askActions(ctx context.Context, o Options) (string, error) {
	u, err := url.Parse(o.Getenv(EnvActionsRequestURL))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("%s is not a URL", EnvActionsRequestURL)
	}
	q := u.Query()
	q.Set("audience", o.Audience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "bearer "+o.Getenv(EnvActionsRequestToken))
	req.Header.Set("Accept", "application/json")
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("couldn't ask GitHub Actions for an identity token: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxTokenBytes+1))
	if err != nil || len(b) > MaxTokenBytes {
		return "", errors.New("GitHub Actions' token service answered too much or too little")
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GitHub Actions' token service answered %s", resp.Status)
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Value == "" {
		return "", errors.New("GitHub Actions' token service answered no token")
	}
	return v.Value, nil
}
