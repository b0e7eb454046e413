package signer

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"

	"github.com/custody-dev/custody/attest"
)

// BundleMediaType is the media type of the bundles SignStatement writes.
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// SignOption configures SignStatement.
type SignOption func(*signOptions)

type signOptions struct {
	trusted root.TrustedMaterial
	logs    []sign.Transparency
	tsas    []*sign.TimestampAuthority
}

// WithTransparencyLog makes SignStatement log the signature in t (a Rekor
// v2 log, such as custody serve's) and put the entry, with its inclusion
// proof, in the bundle.
func WithTransparencyLog(t sign.Transparency) SignOption {
	return func(o *signOptions) { o.logs = append(o.logs, t) }
}

// WithTimestampAuthority makes SignStatement get an RFC 3161 timestamp of
// the signature from ta and put it in the bundle.
func WithTimestampAuthority(ta *sign.TimestampAuthority) SignOption {
	return func(o *signOptions) { o.tsas = append(o.tsas, ta) }
}

// WithTrustedMaterial makes SignStatement verify the bundle it built against
// tm before returning it, so a signer whose key is not (or no longer) in the
// trust root fails at signing time rather than at deploy time.
func WithTrustedMaterial(tm root.TrustedMaterial) SignOption {
	return func(o *signOptions) { o.trusted = tm }
}

// SignStatement signs an in-toto statement as a DSSE envelope of payload
// type application/vnd.in-toto+json with s, and returns the Sigstore bundle
// v0.3 JSON (BundleMediaType) whose verification material is the public key
// hint (see NewKeypair). The statement must parse with attest.ParseStatement;
// its bytes are signed as given, not re-encoded.
func SignStatement(ctx context.Context, s crypto.Signer, statementJSON []byte, opts ...SignOption) ([]byte, error) {
	var o signOptions
	for _, opt := range opts {
		opt(&o)
	}
	if ctx == nil {
		return nil, errors.New("nil context")
	}
	if _, err := attest.ParseStatement(statementJSON); err != nil {
		return nil, fmt.Errorf("refusing to sign: %w", err)
	}
	kp, err := NewKeypair(s)
	if err != nil {
		return nil, err
	}
	return signBundle(ctx, kp, statementJSON, sign.BundleOptions{Context: ctx, TrustedRoot: o.trusted,
		TransparencyLogs: o.logs, TimestampAuthorities: o.tsas})
}

// SignStatementKeyless signs an in-toto statement as SignStatement does,
// with an ephemeral key certified by ca (a Fulcio v2 API, such as custody
// serve's: sign.NewFulcio) for the holder of the OIDC ID token idToken.
// The bundle carries the certificate; the key is forgotten. Log and
// timestamp it (WithTransparencyLog, WithTimestampAuthority): a
// certificate lives minutes, so only they prove the signing time.
func SignStatementKeyless(ctx context.Context, statementJSON []byte, ca sign.CertificateProvider, idToken string, opts ...SignOption) ([]byte, error) {
	var o signOptions
	for _, opt := range opts {
		opt(&o)
	}
	if ctx == nil {
		return nil, errors.New("nil context")
	}
	if idToken == "" {
		return nil, errors.New("keyless signing needs an identity token")
	}
	if _, err := attest.ParseStatement(statementJSON); err != nil {
		return nil, fmt.Errorf("refusing to sign: %w", err)
	}
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		return nil, err
	}
	return signBundle(ctx, kp, statementJSON, sign.BundleOptions{Context: ctx, TrustedRoot: o.trusted,
		CertificateProvider: ca, CertificateProviderOptions: &sign.CertificateProviderOptions{IDToken: idToken},
		TransparencyLogs: o.logs, TimestampAuthorities: o.tsas})
}

// signBundle signs statementJSON with kp per opts and encodes the bundle.
func signBundle(_ context.Context, kp sign.Keypair, statementJSON []byte, opts sign.BundleOptions) ([]byte, error) {
	content := &sign.DSSEData{Data: statementJSON, PayloadType: attest.PayloadType}
	pb, err := sign.Bundle(content, kp, opts)
	if err != nil {
		return nil, fmt.Errorf("couldn't build signed bundle: %w", err)
	}
	out, err := (&bundle.Bundle{Bundle: pb}).MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("couldn't encode bundle: %w", err)
	}
	return out, nil
}
