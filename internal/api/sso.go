package api

import "time"

// SSOInfo is GET /api/v1/sso: where `custody login` signs in.
type SSOInfo struct {
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
}

// SessionRequest is POST /api/v1/sessions: an ID token the provider issued
// to the CLI's client, to exchange for a session.
type SessionRequest struct {
	IDToken string `json:"id_token"`
	// Binding binds the ID token to the server: its nonce is
	// sso.BindNonce(the server's URL, Binding).
	Binding string `json:"binding"`
}

// SessionAnswer is the answer to POST /api/v1/sessions. Session is the
// secret to send as bearer token until Expires.
type SessionAnswer struct {
	Session  string    `json:"session"`
	Identity string    `json:"identity"`
	Issuer   string    `json:"issuer"`
	Roles    []Role    `json:"roles"`
	MFA      bool      `json:"mfa"`
	Expires  time.Time `json:"expires"`
}
