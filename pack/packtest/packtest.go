// Package packtest makes evidence packs for tests: a trust root with an
// admin, a packer and a builder key, a log key and its checkpoints, and
// the admin-signed policy of prod.
package packtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// Fixture is a trust root (one admin, one packer key), a log, the signed
// policy of prod and an artifact: enough to build and open packs.
type Fixture struct {
	Admin, Packer, Builder crypto.Signer
	LogKey                 crypto.Signer
	Root                   *trust.Document
	Policy                 *policy.Signed
	Artifact               string
	Now                    time.Time
}

func NewKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func New(t testing.TB) *Fixture {
	t.Helper()
	f := &Fixture{Admin: NewKey(t), Packer: NewKey(t), Builder: NewKey(t), Now: time.Now()}
	_, lk, _ := ed25519.GenerateKey(rand.Reader)
	f.LogKey = lk
	d, err := trust.NewDocument([]trust.Key{{PublicKey: f.Admin.Public()}}, 1, f.Now.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d.Root.Keys = append(d.Root.Keys, trust.Key{PublicKey: f.Packer.Public(), Role: trust.RolePacker},
		trust.Key{PublicKey: f.Builder.Public(), Role: trust.RoleBuilder})
	d.Root.Tlogs = []trust.TransparencyLog{{BaseURL: "https://log.test", PublicKey: lk.Public(), Window: trust.Window{Start: f.Now.Add(-time.Hour)}}}
	if err := d.Sign(context.Background(), f.Admin); err != nil {
		t.Fatal(err)
	}
	f.Root = d
	f.Policy = f.SignedPolicy(t, "prod", "")
	sum := sha256.Sum256([]byte("the artifact"))
	f.Artifact = "sha256:" + hex.EncodeToString(sum[:])
	return f
}

func (f *Fixture) SignedPolicy(t testing.TB, env, extra string) *policy.Signed {
	t.Helper()
	sp, err := policy.NewSigned([]byte("apiVersion: custody.dev/policy/v1\nenvironment: " + env + "\nversion: 1\ntrustedBuilders: [https://custody.dev/builders/local]\nsigners: [{keyId: " + strings.Repeat("a", 64) + "}]\n" + extra))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Sign(context.Background(), f.Admin); err != nil {
		t.Fatal(err)
	}
	return sp
}

// checkpoint signs a checkpoint of size n with key as origin.
func Checkpoint(t testing.TB, origin string, key crypto.Signer, n uint64) []byte {
	t.Helper()
	s, err := tlog.NewNoteSigner(origin, key)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(fmt.Sprint(n)))
	b, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: origin, Size: n, Hash: h[:]}.Marshal())}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *Fixture) Contents(t testing.TB) *pack.Contents {
	b, _ := f.Policy.Marshal()
	return &pack.Contents{Artifact: f.Artifact, Environment: "prod", Created: f.Now, TrustRoots: []*trust.Document{f.Root},
		SignedPolicy: b, PolicyDigest: f.Policy.Digest(), Checkpoints: [][]byte{Checkpoint(t, "log.test", f.LogKey, 10)},
		Bundles: [][]byte{[]byte(`{"not":"a bundle"}`)}, Quarantine: pack.Quarantine{Checked: true}}
}

func (f *Fixture) Build(t testing.TB, c *pack.Contents, key crypto.Signer) []byte {
	t.Helper()
	b, err := pack.Build(context.Background(), c, func(ctx context.Context, st []byte) ([]byte, error) {
		return signer.SignStatement(ctx, key, st)
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *Fixture) Options() pack.Options {
	return pack.Options{Artifact: f.Artifact, Environment: "prod", Anchor: f.Root, Now: f.Now}
}
