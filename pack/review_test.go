package pack_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/pack/packtest"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/trust"
	"github.com/custody-dev/custody/verify"
)

const corpus = "../testdata/corpus/"

// generatorPolicy allows what the SLSA GitHub generator built for
// slsa-framework/example-package: the real keyless bundle of the corpus
// satisfies it when the Sigstore public-good CA and log are trusted.
func generatorPolicy(t *testing.T, f *packtest.Fixture) *policy.Signed {
	t.Helper()
	sp, err := policy.NewSigned([]byte(`apiVersion: custody.dev/policy/v1
environment: prod
version: 1
trustedBuilders: [https://github.com/slsa-framework/example-trw/.github/workflows/builder_high-perms_slsa3.yml@refs/tags/v2.0.0]
signers: [{issuer: https://token.actions.githubusercontent.com, sourceRepository: https://github.com/slsa-framework/example-package}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Sign(context.Background(), f.Admin); err != nil {
		t.Fatal(err)
	}
	return sp
}

// generatorContents is a pack of the generator's artifact for prod with
// its real bundle and generatorPolicy, quarantine checked and clear.
func generatorContents(t *testing.T, f *packtest.Fixture) *pack.Contents {
	t.Helper()
	bundle, err := os.ReadFile(corpus + "delegator-v2.0.0-workflow_dispatch.sigstore.json")
	if err != nil {
		t.Fatal(err)
	}
	sp := generatorPolicy(t, f)
	c := f.Contents(t)
	c.Artifact = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	c.Bundles = [][]byte{bundle}
	c.SignedPolicy, _ = sp.Marshal()
	c.PolicyDigest = sp.Digest()
	return c
}

// publicGood is the device's own --trusted-root: the public-good CA and
// log that verify the generator's bundle.
func publicGood(t *testing.T) root.TrustedMaterial {
	t.Helper()
	tm, err := verify.LoadTrustedRoot(corpus + "public-good-trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestPackTrustedRootAddsNoTrust: the admins' trust root does not trust
// the Sigstore public-good CA. A packer that puts a trusted root naming
// it (any CA, any log) in the pack must not make the device trust it:
// the device's trust is its trust root and its own --trusted-root, as
// custody policy check's is.
func TestPackTrustedRootAddsNoTrust(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	packersRoot, err := os.ReadFile(corpus + "public-good-trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	c := generatorContents(t, f)
	c.TrustedRoot = packersRoot
	o := f.Options()
	o.Artifact = c.Artifact
	op, err := pack.Open(ctx, f.Build(t, c, f.Packer), o)
	if err != nil {
		t.Fatal(err)
	}
	res, err := op.Decide(ctx, nil, f.Now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Allowed || len(res.Rejected) != 1 {
		t.Fatalf("a CA only the packer vouches for made evidence: allowed %v, rejected %v", res.Allowed, res.Rejected)
	}
	// The device's own trusted root is the device's trust: allowed.
	if res, err = op.Decide(ctx, publicGood(t), f.Now); err != nil || !res.Allowed {
		t.Fatalf("with the device's --trusted-root: %v %+v", err, res)
	}
}

// TestUncheckedQuarantineRefuses: a pack whose packer consulted no
// incident ledger cannot say the artifact is not quarantined, so the
// device does not allow it, however the policy decides (custody policy
// check with a server always consults the server's ledger). A pack
// whose packer consulted one and found nothing allows.
func TestUncheckedQuarantineRefuses(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	for _, tc := range []struct {
		name    string
		q       pack.Quarantine
		allowed bool
		reason  string
	}{
		{"consulted, clear", pack.Quarantine{Checked: true}, true, ""},
		{"consulted, quarantined", pack.Quarantine{Checked: true, Incident: "7"}, false, "incident 7"},
		{"not consulted", pack.Quarantine{}, false, "consulted no incident ledger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := generatorContents(t, f)
			c.Quarantine = tc.q
			o := f.Options()
			o.Artifact = c.Artifact
			op, err := pack.Open(ctx, f.Build(t, c, f.Packer), o)
			if err != nil {
				t.Fatal(err)
			}
			res, err := op.Decide(ctx, publicGood(t), f.Now)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Decision.Allowed {
				t.Fatalf("the policy denies: %+v", res.Decision.Failures)
			}
			reason, _ := res.Refusal()
			var out strings.Builder
			res.WriteText(&out)
			if res.Allowed != tc.allowed || !strings.Contains(reason, tc.reason) || (tc.reason != "" && !strings.Contains(out.String(), tc.reason)) {
				t.Fatalf("allowed %v, refusal %q; want %v, %q\n%s", res.Allowed, reason, tc.allowed, tc.reason, out.String())
			}
		})
	}
}

// packAt is a pack whose checkpoint of log.test has size n.
func packAt(t *testing.T, f *packtest.Fixture, n uint64) []byte {
	t.Helper()
	c := f.Contents(t)
	c.Checkpoints = [][]byte{packtest.Checkpoint(t, "log.test", f.LogKey, n)}
	return f.Build(t, c, f.Packer)
}

// TestStateRace: two runs on one device that loaded the state before
// either wrote it. The second to record must not write back the older
// checkpoint it loaded with: the device saw size 30, so a pack of size
// 20 is a rollback, and a later pack of 25 is too.
func TestStateRace(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	path := filepath.Join(t.TempDir(), "state.json")
	first, err := pack.LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	second, err := pack.LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pack.Check(ctx, packAt(t, f, 30), f.Options(), first, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pack.Check(ctx, packAt(t, f, 20), f.Options(), second, nil); !errors.Is(err, pack.ErrRollback) {
		t.Fatalf("a pack older than what another run recorded meanwhile: %v", err)
	}
	st, err := pack.LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Checkpoints[logKey(t, "log.test", f.LogKey)].Size; got != 30 {
		t.Fatalf("state holds size %d; want 30", got)
	}
	if _, err := pack.Check(ctx, packAt(t, f, 25), f.Options(), st, nil); !errors.Is(err, pack.ErrRollback) {
		t.Fatalf("a pack of 25 after 30: %v", err)
	}

	// Runs at once: whichever order they record in, the state ends at the
	// newest checkpoint any of them accepted.
	path = filepath.Join(t.TempDir(), "state.json")
	packs := make([][]byte, 8)
	for i := range packs {
		packs[i] = packAt(t, f, uint64(10+i))
	}
	accepted := make([]bool, len(packs))
	var wg sync.WaitGroup
	for i := range packs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := pack.LoadState(path)
			if err != nil {
				t.Error(err)
				return
			}
			_, err = pack.Check(ctx, packs[i], f.Options(), st, nil)
			accepted[i] = err == nil
			if err != nil && !errors.Is(err, pack.ErrRollback) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	newest := uint64(0)
	for i, ok := range accepted {
		if ok {
			newest = uint64(10 + i)
		}
	}
	if st, err = pack.LoadState(path); err != nil || st.Checkpoints[logKey(t, "log.test", f.LogKey)].Size != newest {
		t.Fatalf("state %+v, %v; want size %d, the newest accepted", st, err, newest)
	}
}

// TestStateFile: what the device does with its state file when it is
// damaged, writable by others, a symbolic link, or cannot be written.
// Refused packs leave the file as it was.
func TestStateFile(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	check := func(path string, b []byte) error {
		st, err := pack.LoadState(path)
		if err != nil {
			return err
		}
		_, err = pack.Check(ctx, b, f.Options(), st, nil)
		return err
	}
	t.Run("damaged", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		os.WriteFile(path, []byte(`{"logs":{"log.test":{"size":30`), 0o600)
		if err := check(path, packAt(t, f, 40)); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("damaged state: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != `{"logs":{"log.test":{"size":30` {
			t.Fatalf("damaged state rewritten: %s", b)
		}
	})
	t.Run("writable by others", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		if err := check(path, packAt(t, f, 30)); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, 0o666)
		if err := check(path, packAt(t, f, 40)); err == nil || !strings.Contains(err.Error(), "writable by others") {
			t.Fatalf("world-writable state: %v", err)
		}
	})
	t.Run("symbolic link", func(t *testing.T) {
		dir := t.TempDir()
		persistent := filepath.Join(dir, "data", "state.json")
		os.MkdirAll(filepath.Dir(persistent), 0o700)
		link := filepath.Join(dir, "state.json")
		if err := os.Symlink(persistent, link); err != nil {
			t.Fatal(err)
		}
		if err := check(link, packAt(t, f, 30)); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the link was replaced by a file: %v %v", fi.Mode(), err)
		}
		if err := check(persistent, packAt(t, f, 20)); !errors.Is(err, pack.ErrRollback) {
			t.Fatalf("the link's target does not hold what the device saw: %v", err)
		}
		// Its storage gone (not mounted): refused, not an empty state.
		os.RemoveAll(filepath.Join(dir, "data"))
		if err := check(link, packAt(t, f, 20)); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("a link to missing storage: %v", err)
		}
	})
}

// TestPolicyRollback: the admins replaced prod's policy version 1 by a
// stricter version 2. A packer (or a pack made from an old copy of the
// signed policy) cannot take a device that decided under version 2 back
// to version 1, even in a pack with a newer checkpoint. Other
// environments' versions are their own.
func TestPolicyRollback(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	path := filepath.Join(t.TempDir(), "state.json")
	withPolicy := func(n uint64, env string, version int) ([]byte, pack.Options) {
		sp, err := policy.NewSigned(fmt.Appendf(nil, "apiVersion: custody.dev/policy/v1\nenvironment: %s\nversion: %d\ntrustedBuilders: [https://custody.dev/builders/local]\nsigners: [{keyId: %s}]\n", env, version, strings.Repeat("a", 64)))
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Sign(ctx, f.Admin); err != nil {
			t.Fatal(err)
		}
		c := f.Contents(t)
		c.Environment = env
		c.Checkpoints = [][]byte{packtest.Checkpoint(t, "log.test", f.LogKey, n)}
		c.SignedPolicy, _ = sp.Marshal()
		c.PolicyDigest = sp.Digest()
		o := f.Options()
		o.Environment = env
		return f.Build(t, c, f.Packer), o
	}
	check := func(b []byte, o pack.Options) error {
		st, err := pack.LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pack.Check(ctx, b, o, st, nil)
		return err
	}
	if err := check(withPolicy(20, "prod", 2)); err != nil {
		t.Fatal(err)
	}
	if err := check(withPolicy(30, "prod", 1)); !errors.Is(err, pack.ErrRollback) || !strings.Contains(err.Error(), "policy version 1") {
		t.Fatalf("an older policy of prod: %v", err)
	}
	if err := check(withPolicy(30, "staging", 1)); err != nil {
		t.Fatalf("staging's own version 1: %v", err)
	}
	if err := check(withPolicy(40, "prod", 2)); err != nil {
		t.Fatalf("prod's version 2 again: %v", err)
	}
}

// TestUnsignedAnchorRefused: the device's own trust root file must be
// signed by its own admins (threshold), as custody-verify's --trust-root
// without --pack already must: an unsigned draft, or one whose
// signatures were stripped, anchors nothing.
func TestUnsignedAnchorRefused(t *testing.T) {
	f := packtest.New(t)
	dir := t.TempDir()
	raw, err := f.Root.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := trust.ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	unsigned.Signatures = nil
	draft, err := unsigned.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "root.json"), draft, 0o644)
	os.WriteFile(filepath.Join(dir, "app.custody"), f.Build(t, f.Contents(t), f.Packer), 0o644)
	d := &pack.Device{PackPath: filepath.Join(dir, "app.custody"), TrustRootPath: filepath.Join(dir, "root.json"),
		StatePath: filepath.Join(dir, "state.json"), Options: f.Options()}
	d.Anchor = nil
	if _, err := d.Verify(context.Background()); err == nil || !strings.Contains(err.Error(), "root.json") {
		t.Fatalf("an unsigned trust root anchored the pack: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state written: %v", err)
	}
}

// TestRevokedPackerKey: trust root version 2 revokes the packer key. A
// pack that key signs, carrying the chain to version 2, is refused; so
// is one without the chain on a device that has seen version 2.
func TestRevokedPackerKey(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	raw, _ := f.Root.Marshal()
	v2, err := trust.ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := trust.KeyID(f.Packer.Public())
	if err := v2.RevokeKey(id, f.Now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := v2.Sign(ctx, f.Admin); err != nil {
		t.Fatal(err)
	}
	c := f.Contents(t)
	c.TrustRoots = append(c.TrustRoots, v2)
	if _, err := pack.Open(ctx, f.Build(t, c, f.Packer), f.Options()); !errors.Is(err, pack.ErrSignature) {
		t.Fatalf("a pack signed by a key its own chain revokes: %v", err)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	st, _ := pack.LoadState(path)
	if err := st.Record(nil, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := pack.Check(ctx, f.Build(t, f.Contents(t), f.Packer), f.Options(), st, nil); !errors.Is(err, pack.ErrRollback) {
		t.Fatalf("a pack under version 1 on a device that saw version 2: %v", err)
	}
}
