// Package ca is custody's code-signing certificate authority: it turns an
// OIDC ID token from a trusted issuer into a certificate valid for minutes,
// the way Sigstore's Fulcio does (API:
// https://github.com/sigstore/fulcio/blob/main/fulcio.proto, served as
// JSON at POST /api/v2/signingCert; certificate extensions:
// https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
//
// An Authority verifies the token (Verify: signature against the issuer's
// JWKS, issuer, audience, expiry, not-before, the subjects the issuer entry
// allows), checks the requester's proof of possession of the key to be
// certified (CheckProof: a signature over the token's email or subject, or
// a CSR), records a precertificate through Config.Record and then issues
// the certificate with an RFC 6962 SCT embedded, signed by the
// authority's certificate transparency key (Issue). Verifiers trust the
// CA's chain and the CT key through the trusted root (certificateAuthorities
// and ctlogs).
//
// Errors wrap ErrToken (the token is refused: 401), ErrDenied (a valid
// token whose identity the issuer entry does not allow: 403) or
// ErrRequest (a malformed request, a weak key or a missing or wrong proof
// of possession: 400).
package ca
