package ca

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The JSON of Fulcio's v2 API (fulcio.proto through grpc-gateway), as
// cosign's and sigstore-go's Fulcio clients send and read it.

// SigningCertRequest is the body of POST /api/v2/signingCert. The token may
// also come as "Authorization: Bearer TOKEN" (sigstore-go sends it so).
type SigningCertRequest struct {
	Credentials *struct {
		OIDCIdentityToken string `json:"oidcIdentityToken"`
	} `json:"credentials,omitempty"`
	PublicKeyRequest *struct {
		PublicKey *struct {
			Algorithm string `json:"algorithm"`
			Content   string `json:"content"`
		} `json:"publicKey"`
		ProofOfPossession []byte `json:"proofOfPossession"` // base64 in JSON
	} `json:"publicKeyRequest,omitempty"`
	CertificateSigningRequest []byte `json:"certificateSigningRequest,omitempty"` // base64 of a PEM or DER CSR
}

// ParseSigningCertRequest parses the body of POST /api/v2/signingCert:
// exactly one of publicKeyRequest and certificateSigningRequest. Unknown
// fields are refused. Errors wrap ErrRequest.
func ParseSigningCertRequest(body []byte) (*SigningCertRequest, error) {
	var r SigningCertRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: not a Fulcio v2 signing certificate request: %v", ErrRequest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the request", ErrRequest)
	}
	hasKey := r.PublicKeyRequest != nil && r.PublicKeyRequest.PublicKey != nil && r.PublicKeyRequest.PublicKey.Content != ""
	switch {
	case hasKey && len(r.CertificateSigningRequest) > 0:
		return nil, fmt.Errorf("%w: give a public key request or a CSR, not both", ErrRequest)
	case !hasKey && len(r.CertificateSigningRequest) == 0:
		return nil, fmt.Errorf("%w: the request names no public key (publicKeyRequest.publicKey.content or certificateSigningRequest)", ErrRequest)
	}
	return &r, nil
}

// Token returns the request's token: its credentials, else the bearer
// token of the Authorization header value auth.
func (r *SigningCertRequest) Token(auth string) string {
	if r.Credentials != nil && r.Credentials.OIDCIdentityToken != "" {
		return r.Credentials.OIDCIdentityToken
	}
	tok, _ := strings.CutPrefix(auth, "Bearer ")
	return strings.TrimSpace(tok)
}

// CertificateChain is Fulcio's chain of PEM certificates, leaf first.
type CertificateChain struct {
	Certificates []string `json:"certificates"`
}

// SigningCertResponse is the answer of POST /api/v2/signingCert: custody
// always embeds its SCT.
type SigningCertResponse struct {
	SignedCertificateEmbeddedSct struct {
		Chain CertificateChain `json:"chain"`
	} `json:"signedCertificateEmbeddedSct"`
}

// TrustBundle is the answer of GET /api/v2/trustBundle.
type TrustBundle struct {
	Chains []CertificateChain `json:"chains"`
}

// Response is the answer for an issued certificate: it, then the CA's
// chain, in PEM.
func (is *Issued) Response() *SigningCertResponse {
	var r SigningCertResponse
	r.SignedCertificateEmbeddedSct.Chain = pemChain(append([][]byte{is.Cert.Raw}, raws(is.Chain)...))
	return &r
}

// TrustBundle is the CA's chain as GET /api/v2/trustBundle answers it.
func (a *Authority) TrustBundle() *TrustBundle {
	return &TrustBundle{Chains: []CertificateChain{pemChain(raws(a.cfg.Chain))}}
}
