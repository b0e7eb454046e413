package server

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/trust"
)

// This file decides what the server trusts when it indexes a pushed
// bundle, and whom a verified bundle is attributed to. See "Evidence
// attribution" in the package documentation.

// evidenceTrust is what a pushed bundle is verified against: the current
// custody trust root's logs, timestamp authorities, certificate
// authorities and evidence-signing keys (its windows and revocations
// included), plus this server's own log and timestamp authority and its
// builder and audit keys, trusted since the data directory was created,
// where the trust root does not already hold them. keys are the
// evidence-signing keys of tm, for attribution.
func (s *Server) evidenceTrust() (tm root.TrustedMaterial, keys []trust.Key, err error) {
	own, err := trust.LoadTrustedRoot(s.trustedRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't load trusted root: %w", err)
	}
	var r trust.Root
	if doc := s.TrustRootDocument(); doc != nil {
		r = doc.Root
		r.Tlogs = slices.Clone(r.Tlogs)
		r.TSAs = slices.Clone(r.TSAs)
		r.Keys = slices.Clone(r.Keys)
	}
	for _, l := range own.Tlogs {
		if !slices.ContainsFunc(r.Tlogs, func(o trust.TransparencyLog) bool { return sameKey(o.PublicKey, l.PublicKey) }) {
			r.Tlogs = append(r.Tlogs, l)
		}
	}
	for _, a := range own.TSAs {
		if !slices.ContainsFunc(r.TSAs, func(o trust.TimestampAuthority) bool {
			return len(o.Chain) > 0 && len(a.Chain) > 0 && o.Chain[0].Equal(a.Chain[0])
		}) {
			r.TSAs = append(r.TSAs, a)
		}
	}
	// The server's own CA and its CT log (server_ca.go).
	r.CertificateAuthorities = append(slices.Clone(r.CertificateAuthorities), own.CertificateAuthorities...)
	r.CTLogs = append(slices.Clone(r.CTLogs), own.CTLogs...)
	ownKeys := []crypto.PublicKey{s.auditKey.Public()}
	for _, k := range s.builders {
		ownKeys = append(ownKeys, k.Public())
	}
	for _, pub := range ownKeys {
		id, err := trust.KeyID(pub)
		if err != nil {
			return nil, nil, err
		}
		// A key the trust root names keeps the trust root's window and
		// revocation.
		if !slices.ContainsFunc(r.Keys, func(k trust.Key) bool { return keyHint(k) == id || sameKey(k.PublicKey, pub) }) {
			r.Keys = append(r.Keys, trust.Key{PublicKey: pub, Window: trust.Window{Start: s.created}, Role: trust.RoleBuilder})
		}
	}
	if tm, err = r.TrustedMaterial(); err != nil {
		return nil, nil, fmt.Errorf("couldn't load trusted root: %w", err)
	}
	for _, k := range r.Keys {
		if k.Role.SignsEvidence() {
			keys = append(keys, k)
		}
	}
	return tm, keys, nil
}

// keyHint is the hint that selects k in trust material: its ID, or the
// default key ID of its public key.
func keyHint(k trust.Key) string {
	if k.ID != "" {
		return k.ID
	}
	id, _ := trust.KeyID(k.PublicKey)
	return id
}

// trustedKeyFor returns the key among keys that a bundle with this hint
// is verified with: the one whose hint is exactly the bundle's (no
// decoding, so no other spelling of a key ID selects it).
func trustedKeyFor(keys []trust.Key, hint string) (trust.Key, bool) {
	if hint == "" {
		return trust.Key{}, false
	}
	for _, k := range keys {
		if keyHint(k) == hint {
			return k, true
		}
	}
	return trust.Key{}, false
}

func sameKey(a, b crypto.PublicKey) bool {
	da, err1 := x509.MarshalPKIXPublicKey(a)
	db, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}
