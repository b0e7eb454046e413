package sso

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/custody-dev/custody/internal/api"
)

// CLILogin is a `custody login`: a loopback redirect (RFC 8252) with PKCE
// against the provider the server names, then the ID token exchanged at
// the server for a session.
type CLILogin struct {
	// Server is the custody server's URL.
	Server string
	// Open shows the sign-in URL to the person (prints it, starts a
	// browser).
	Open func(url string) error
	// HTTPClient reaches the server and the provider. Default a client
	// with a 30 s timeout.
	HTTPClient *http.Client
	// Timeout bounds the whole sign-in. Default 5 minutes.
	Timeout time.Duration
}

// maxAnswer bounds what is read of the server's answers.
const maxAnswer = 64 << 10

// Login signs in and returns the session the server started.
func (o CLILogin) Login(ctx context.Context) (*api.SessionAnswer, error) {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	server := strings.TrimRight(o.Server, "/")
	var info api.SSOInfo
	if err := o.getJSON(ctx, server+"/api/v1/sso", &info); err != nil {
		return nil, err
	}
	pctx := oidc.ClientContext(ctx, o.HTTPClient)
	op, err := oidc.NewProvider(pctx, info.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity provider %s unreachable: %w", info.Issuer, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("couldn't listen on loopback for the sign-in's redirect: %w", err)
	}
	defer ln.Close()
	cfg := &oauth2.Config{ClientID: info.ClientID, Endpoint: op.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile"},
		RedirectURL: fmt.Sprintf("http://%s/callback", ln.Addr())}
	if err := checkAuthEndpoint(info.Issuer, cfg.Endpoint.AuthURL); err != nil {
		return nil, err
	}
	// The ID token is bound to this server (binding.go): no other custody
	// server of the provider takes it, whoever holds it.
	l, binding := NewLogin(), oauth2.GenerateVerifier()
	l.Nonce = BindNonce(server, binding)
	if err := o.Open(cfg.AuthCodeURL(l.State, oidc.Nonce(l.Nonce), oauth2.S256ChallengeOption(l.Verifier))); err != nil {
		return nil, err
	}
	code, err := awaitCode(ctx, ln, l.State)
	if err != nil {
		return nil, err
	}
	tok, err := cfg.Exchange(pctx, code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		return nil, fmt.Errorf("the identity provider refused the code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	t, err := op.Verifier(&oidc.Config{ClientID: info.ClientID}).Verify(pctx, raw)
	if err != nil {
		return nil, fmt.Errorf("ID token refused: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(t.Nonce), []byte(l.Nonce)) != 1 {
		return nil, errors.New("ID token refused: its nonce is not this sign-in's")
	}
	var a api.SessionAnswer
	if err := o.postJSON(ctx, server+"/api/v1/sessions", api.SessionRequest{IDToken: raw, Binding: binding}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// awaitCode serves the loopback redirect until one carries state, and
// returns its code.
func awaitCode(ctx context.Context, ln net.Listener, state string) (string, error) {
	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/callback" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
			http.Error(w, "not this sign-in's redirect", http.StatusBadRequest)
			return
		}
		res := result{code: q.Get("code")}
		if e := q.Get("error"); e != "" || res.code == "" {
			res.err = fmt.Errorf("the identity provider refused sign-in: %s %s", e, q.Get("error_description"))
			http.Error(w, "Sign-in refused. You can close this tab.", http.StatusUnauthorized)
		} else {
			io.WriteString(w, "Signed in to custody. You can close this tab.\n")
		}
		select {
		case done <- res:
		default:
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	select {
	case res := <-done:
		return res.code, res.err
	case <-ctx.Done():
		return "", fmt.Errorf("sign-in not finished in time: %w", ctx.Err())
	}
}

func (o CLILogin) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return o.do(req, out)
}

func (o CLILogin) postJSON(ctx context.Context, url string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return o.do(req, out)
}

// ServerError is a refusal from the custody server.
type ServerError struct {
	Status int
	Msg    string
}

func (e *ServerError) Error() string { return fmt.Sprintf("server answered %d: %s", e.Status, e.Msg) }

func (o CLILogin) do(req *http.Request, out any) error {
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("couldn't reach %s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && strings.HasSuffix(req.URL.Path, "/api/v1/sso"):
		return &ServerError{Status: resp.StatusCode, Msg: "this server has no single sign-on (serve --sso-issuer); use a token (CUSTODY_TOKEN)"}
	case resp.StatusCode != http.StatusOK:
		return &ServerError{Status: resp.StatusCode, Msg: strings.TrimSpace(string(b))}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("malformed answer from %s: %w", req.URL.Path, err)
	}
	return nil
}

// checkAuthEndpoint refuses a provider's authorization endpoint that is
// not an absolute https URL (http when the issuer is): the sign-in URL
// starts with it and is handed to $BROWSER as an argument and printed,
// so "--gpu-launcher=…" would be a browser switch, "file:" or
// "javascript:" another kind of page, and control characters terminal
// escapes.
func checkAuthEndpoint(issuer, endpoint string) error {
	u, err := url.Parse(endpoint)
	ok := err == nil && u.Host != "" && u.User == nil && (u.Scheme == "https" || u.Scheme == "http" && strings.HasPrefix(issuer, "http://")) &&
		!strings.ContainsFunc(endpoint, func(r rune) bool { return r <= ' ' || r == 0x7f })
	if !ok {
		return fmt.Errorf("identity provider %.200q names authorization endpoint %.200q, not an https URL: not opened", issuer, endpoint)
	}
	return nil
}
