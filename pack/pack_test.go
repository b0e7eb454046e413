package pack_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/pack/packtest"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/trust"
)

func TestOpenGoodPack(t *testing.T) {
	f := packtest.New(t)
	op, err := pack.Open(context.Background(), f.Build(t, f.Contents(t), f.Packer), f.Options())
	if err != nil {
		t.Fatalf("a good pack is refused: %v", err)
	}
	if len(op.Checkpoints) != 1 || op.Checkpoints[0].Size != 10 || op.Policy.Digest() != f.Policy.Digest() || len(op.Bundles) != 1 {
		t.Fatalf("opened pack: %+v", op)
	}
	res, err := op.Decide(context.Background(), nil, f.Now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Allowed || len(res.Rejected) != 1 {
		t.Fatalf("a pack whose only bundle is not a bundle must deny, rejecting it: %+v", res)
	}
}

// edit rewrites the pack document with change applied to its entries.
func edit(t *testing.T, b []byte, change func(m map[string]any, es []any) []any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["entries"] = change(m, m["entries"].([]any))
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func entry(name string, content []byte) map[string]any {
	return map[string]any{"name": name, "content": content}
}

// TestHostilePacks: what an attacker who can change the pack file (but
// holds no packer or admin key) tries, each refused with its error.
func TestHostilePacks(t *testing.T) {
	f := packtest.New(t)
	good := f.Build(t, f.Contents(t), f.Packer)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte{'{'}, 10<<20)) // a 10 MiB bomb, compressed to a few KiB
	zw.Close()
	otherPolicy := f.SignedPolicy(t, "prod", "maxAge: 30d\n")
	otherPolicyJSON, _ := otherPolicy.Marshal()
	cases := []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"extra entry", edit(t, good, func(_ map[string]any, es []any) []any {
			return append(es, entry("bundle/0001", []byte(`{}`)))
		}), pack.ErrContents, `"bundle/0001" is not in the signed manifest`},
		{"duplicated entry", edit(t, good, func(_ map[string]any, es []any) []any { return append(es, es[0]) }), pack.ErrMalformed, "given twice"},
		{"missing entry", edit(t, good, func(_ map[string]any, es []any) []any { return es[1:] }), pack.ErrContents, "is missing"},
		{"oversized entry", edit(t, good, func(_ map[string]any, es []any) []any {
			return append(es, entry("checkpoint/1", bytes.Repeat([]byte("a"), 65<<10)))
		}), pack.ErrMalformed, "larger than"},
		{"path traversal", edit(t, good, func(_ map[string]any, es []any) []any {
			return append(es, entry("../../etc/passwd", []byte("x")))
		}), pack.ErrMalformed, "not a name a pack has"},
		{"traversal inside a kind", edit(t, good, func(_ map[string]any, es []any) []any {
			return append(es, entry("bundle/../../x", []byte("x")))
		}), pack.ErrMalformed, "not a name a pack has"},
		{"absolute name", edit(t, good, func(_ map[string]any, es []any) []any {
			return append(es, entry("/bundle/0001", []byte("x")))
		}), pack.ErrMalformed, "not a name a pack has"},
		{"entry changed", edit(t, good, func(_ map[string]any, es []any) []any {
			es[0].(map[string]any)["content"] = []byte(`{"also":"not a bundle"}`)
			return es
		}), pack.ErrContents, "does not match the signed manifest"},
		{"policy swapped for another admin-signed policy", edit(t, good, func(_ map[string]any, es []any) []any {
			for _, e := range es {
				if e.(map[string]any)["name"] == "policy.signed.json" {
					e.(map[string]any)["content"] = otherPolicyJSON
				}
			}
			return es
		}), pack.ErrContents, "does not match the signed manifest"},
		{"gzip bomb", gz.Bytes(), pack.ErrMalformed, "compressed or archived"},
		{"tar", append([]byte("app.custody\x00"), make([]byte, 500)...), pack.ErrMalformed, "not a JSON document"},
		{"too large", bytes.Repeat([]byte(" "), pack.MaxBytes+1), pack.ErrMalformed, "larger than"},
		{"unknown member", bytes.Replace(good, []byte(`"mediaType"`), []byte(`"extra": 1, "mediaType"`), 1), pack.ErrMalformed, "unknown field"},
		{"repeated member", bytes.Replace(good, []byte(`"mediaType"`), []byte(`"entries": [], "mediaType"`), 1), pack.ErrMalformed, "duplicate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pack.Open(context.Background(), c.b, f.Options())
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v with %q", err, c.want, c.msg)
			}
		})
	}
}

// TestRefusedSigners: packs signed right but by the wrong party, or
// carrying what the trust does not vouch for.
func TestRefusedSigners(t *testing.T) {
	f := packtest.New(t)
	other := packtest.NewKey(t)
	stranger := f.Contents(t)
	stranger.Checkpoints = [][]byte{packtest.Checkpoint(t, "log.test", packtest.NewKey(t), 10)}
	anotherLog := f.Contents(t)
	anotherLog.Checkpoints = append(anotherLog.Checkpoints, packtest.Checkpoint(t, "other.log.test", other, 99))
	staging := f.SignedPolicy(t, "staging", "")
	stagingJSON, _ := staging.Marshal()
	wrongEnv := f.Contents(t)
	wrongEnv.SignedPolicy, wrongEnv.PolicyDigest = stagingJSON, staging.Digest()
	unsigned, _ := policy.NewSigned([]byte("apiVersion: custody.dev/policy/v1\nenvironment: prod\nversion: 2\ntrustedBuilders: [x]\nsigners: [{keyId: " + strings.Repeat("a", 64) + "}]\n"))
	unsigned.Sign(context.Background(), other)
	unsignedJSON, _ := unsigned.Marshal()
	notAdmin := f.Contents(t)
	notAdmin.SignedPolicy, notAdmin.PolicyDigest = unsignedJSON, unsigned.Digest()
	cases := []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"builder key is not a packer", f.Build(t, f.Contents(t), f.Builder), pack.ErrSignature, "signature"},
		{"key outside the trust root", f.Build(t, f.Contents(t), other), pack.ErrSignature, "signature"},
		{"checkpoint signed by another key", f.Build(t, stranger, f.Packer), pack.ErrCheckpoint, "not signed by a transparency log"},
		{"checkpoint of another log", f.Build(t, anotherLog, f.Packer), pack.ErrCheckpoint, "not signed by a transparency log"},
		{"policy of another environment", f.Build(t, wrongEnv, f.Packer), pack.ErrContents, `policy of "staging"`},
		{"policy not signed by the admins", f.Build(t, notAdmin, f.Packer), pack.ErrContents, "not signed by the admins"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pack.Open(context.Background(), c.b, f.Options())
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v with %q", err, c.want, c.msg)
			}
		})
	}
	// a pinned key (a server's audit key) is accepted as a pack signer
	o := f.Options()
	o.PackKeys = []crypto.PublicKey{other.Public()}
	if _, err := pack.Open(context.Background(), f.Build(t, f.Contents(t), other), o); err != nil {
		t.Fatalf("a pack signed by a pinned key: %v", err)
	}
}

func TestTamperedArtifactAndStale(t *testing.T) {
	f := packtest.New(t)
	good := f.Build(t, f.Contents(t), f.Packer)
	o := f.Options()
	o.Artifact = "sha256:" + strings.Repeat("ab", 32)
	if _, err := pack.Open(context.Background(), good, o); !errors.Is(err, pack.ErrSignature) || !strings.Contains(err.Error(), "not about this artifact") {
		t.Fatalf("another artifact: %v", err)
	}
	o = f.Options()
	o.Environment = "staging"
	if _, err := pack.Open(context.Background(), good, o); !errors.Is(err, pack.ErrContents) {
		t.Fatalf("another environment: %v", err)
	}
	o = f.Options()
	o.Now = f.Now.Add(pack.DefaultValidity + time.Minute)
	if _, err := pack.Open(context.Background(), good, o); !errors.Is(err, pack.ErrStale) {
		t.Fatalf("expired pack: %v", err)
	}
	o.Now = f.Now.Add(366 * 24 * time.Hour)
	if _, err := pack.Open(context.Background(), good, o); !errors.Is(err, pack.ErrStale) || !strings.Contains(err.Error(), "trust root") {
		t.Fatalf("expired trust root: %v", err)
	}
	c := f.Contents(t)
	short := f.SignedPolicy(t, "prod", "maxAge: 1h\n")
	c.SignedPolicy, _ = short.Marshal()
	c.PolicyDigest = short.Digest()
	o = f.Options()
	o.Now = f.Now.Add(2 * time.Hour)
	if _, err := pack.Open(context.Background(), f.Build(t, c, f.Packer), o); !errors.Is(err, pack.ErrStale) || !strings.Contains(err.Error(), "maxAge") {
		t.Fatalf("older than the policy's maxAge: %v", err)
	}
}

// TestRollback: the device refuses a pack whose checkpoint is older than
// one it saw, and a fork at the same size; its state survives on disk.
func TestRollback(t *testing.T) {
	f := packtest.New(t)
	path := filepath.Join(t.TempDir(), "state", "edge.json")
	mk := func(n uint64, seed string) []byte {
		c := f.Contents(t)
		c.Checkpoints = [][]byte{packtest.Checkpoint(t, "log.test", f.LogKey, n)}
		if seed != "" {
			c.Created = c.Created.Add(time.Second)
			var s note.Signer
			s, _ = tlog.NewNoteSigner("log.test", f.LogKey)
			h := sha256.Sum256([]byte(seed))
			c.Checkpoints[0], _ = note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: "log.test", Size: n, Hash: h[:]}.Marshal())}, s)
		}
		return f.Build(t, c, f.Packer)
	}
	check := func(b []byte) error {
		st, err := pack.LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pack.Check(context.Background(), b, f.Options(), st, nil)
		return err
	}
	if err := check(mk(20, "")); err != nil {
		t.Fatal(err)
	}
	if err := check(mk(10, "")); !errors.Is(err, pack.ErrRollback) || !strings.Contains(err.Error(), "older than the 20") {
		t.Fatalf("rolled-back pack: %v", err)
	}
	if err := check(mk(20, "fork")); !errors.Is(err, pack.ErrRollback) || !strings.Contains(err.Error(), "forked") {
		t.Fatalf("forked pack: %v", err)
	}
	if err := check(mk(30, "")); err != nil {
		t.Fatalf("a newer pack: %v", err)
	}
	if err := check(mk(20, "")); !errors.Is(err, pack.ErrRollback) {
		t.Fatalf("the state did not keep size 30: %v", err)
	}
}

// TestWitnessCosignatures: when the trust root lists witness keys and sets
// no witness threshold, a pack's checkpoint needs a cosignature (C2SP
// tlog-cosignature/v1) of one of them that verifies; a checkpoint without
// one, with only a forged one, or cosigned only by a witness the trust
// root does not list is refused.
func TestWitnessCosignatures(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	_, wkey, _ := ed25519.GenerateKey(rand.Reader)
	w, err := tlog.NewWitness("witness.test", wkey)
	if err != nil {
		t.Fatal(err)
	}
	_, okey, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := tlog.NewWitness("other.test", okey)
	f.Root.Root.Keys = append(f.Root.Root.Keys, trust.Key{PublicKey: wkey.Public(), Role: trust.RoleWitness, Identity: "witness.test"})
	f.Root.Signatures = nil
	if err := f.Root.Sign(ctx, f.Admin); err != nil {
		t.Fatal(err)
	}
	logV, err := tlog.NewNoteVerifier("log.test", f.LogKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	plain := packtest.Checkpoint(t, "log.test", f.LogKey, 10)
	cosigned := func(w *tlog.Witness) []byte {
		_, line, err := w.Cosign(logV, plain, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return append(append([]byte(nil), plain...), line...)
	}
	good := cosigned(w)
	// the witness's line with the last byte of its signature changed
	line := strings.Fields(string(good[len(plain):]))
	sig, _ := base64.StdEncoding.DecodeString(line[2])
	sig[len(sig)-1] ^= 1
	forged := append(bytes.Clone(plain), []byte("— "+line[1]+" "+base64.StdEncoding.EncodeToString(sig)+"\n")...)
	for _, tc := range []struct {
		name       string
		checkpoint []byte
		want       string
	}{
		{"witnessed", good, ""},
		{"both witnesses", append(cosigned(other), good[len(plain):]...), ""},
		{"no cosignature", plain, "has valid cosignatures of 0 witness(es), the trust root requires 1 (of the 1"},
		{"unlisted witness", cosigned(other), "other.test: not a witness the trust root lists now"},
		{"forged cosignature", forged, "witness.test: cosignature does not verify over this checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.Contents(t)
			c.Checkpoints = [][]byte{tc.checkpoint}
			op, err := pack.Open(ctx, f.Build(t, c, f.Packer), f.Options())
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Open = %v", err)
			case tc.want == "":
				if got := op.Checkpoints[0].Witnesses; len(got) != 1 || got[0] != "witness.test" {
					t.Errorf("witnesses = %v; want [witness.test]", got)
				}
			case err == nil || !errors.Is(err, pack.ErrCheckpoint) || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Open = %v; want %s", err, tc.want)
			}
		})
	}
}

// TestWitnessThresholdPack: a trust root that requires 2 of its 3
// witnesses. A pack whose checkpoint two of them cosigned (with the
// witness command's own cosigner, tlog.Witness) is made, copied to the
// device and accepted there; one cosignature, one witness twice, or a
// witness the root does not list is refused, and the refused pack leaves
// the device's last seen checkpoint as it was.
func TestWitnessThresholdPack(t *testing.T) {
	ctx := context.Background()
	f := packtest.New(t)
	logV, err := tlog.NewNoteVerifier("log.test", f.LogKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	var ws []*tlog.Witness
	for _, name := range []string{"w1.test", "w2.test", "w3.test", "unlisted.test"} {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		w, err := tlog.NewWitness(name, k)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		if name != "unlisted.test" {
			f.Root.Root.Keys = append(f.Root.Root.Keys, trust.Key{PublicKey: k.Public(), Role: trust.RoleWitness, Identity: name})
		}
	}
	if err := f.Root.SetWitnessThreshold(2); err != nil {
		t.Fatal(err)
	}
	if err := f.Root.Sign(ctx, f.Admin); err != nil {
		t.Fatal(err)
	}
	cosigned := func(size uint64, by ...int) []byte {
		cp := packtest.Checkpoint(t, "log.test", f.LogKey, size)
		out := bytes.Clone(cp)
		for _, i := range by {
			_, line, err := ws[i].Cosign(logV, cp, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, line...)
		}
		return out
	}
	dir := t.TempDir()
	device := func(name string, checkpoint []byte) (*pack.Result, error) {
		c := f.Contents(t)
		c.Checkpoints = [][]byte{checkpoint}
		path := filepath.Join(dir, name+".custody") // made here, copied to the device's disk
		if err := os.WriteFile(path, f.Build(t, c, f.Packer), 0o600); err != nil {
			t.Fatal(err)
		}
		d := pack.Device{PackPath: path, Options: f.Options(), StatePath: filepath.Join(dir, "state.json")}
		return d.Verify(ctx)
	}
	res, err := device("made", cosigned(10, 0, 2))
	if err != nil {
		t.Fatalf("a checkpoint 2 of 3 witnesses cosigned is refused: %v", err)
	}
	if got := res.Checkpoints[0].Witnesses; len(got) != 2 || got[0] != "w1.test" || got[1] != "w3.test" {
		t.Fatalf("witnesses = %v", got)
	}
	var out bytes.Buffer
	res.WriteText(&out)
	if !strings.Contains(out.String(), "(2 cosignature(s), witnessed by w1.test, w3.test)") {
		t.Errorf("the device does not say who witnessed:\n%s", out.String())
	}
	for _, tc := range []struct {
		name       string
		checkpoint []byte
		want       string
	}{
		{"one", cosigned(20, 1), "has valid cosignatures of 1 witness(es), the trust root requires 2 (of the 3 it lists now)"},
		{"one twice", append(cosigned(20, 1), cosigned(20, 1)[len(packtest.Checkpoint(t, "log.test", f.LogKey, 20)):]...), "has valid cosignatures of 1 witness(es)"},
		{"unlisted", cosigned(20, 1, 3), "unlisted.test: not a witness the trust root lists now"},
		{"none", cosigned(20), "has valid cosignatures of 0 witness(es)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(filepath.Join(dir, "state.json"))
			_, err := device(tc.name, tc.checkpoint)
			if !errors.Is(err, pack.ErrCheckpoint) || !errors.Is(err, trust.ErrWitnesses) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v; want %q", err, tc.want)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, "state.json")); !bytes.Equal(before, after) {
				t.Fatalf("a refused pack changed the device state:\n%s\n%s", before, after)
			}
		})
	}
	// the state still holds size 10: a pack at 20 that meets the threshold is taken
	if _, err := device("newer", cosigned(20, 1, 2)); err != nil {
		t.Fatal(err)
	}
}

// TestBuildRefusesWhatDevicesRefuse: a pack of more entries than Parse
// reads is refused when it is made, saying why, rather than written for
// every device to refuse as malformed; one of MaxEntries opens.
func TestBuildRefusesWhatDevicesRefuse(t *testing.T) {
	f := packtest.New(t)
	c := f.Contents(t)
	fixed := 3 // trust root, policy, checkpoint
	c.Bundles = nil
	for i := 0; i < pack.MaxEntries-fixed; i++ {
		c.Bundles = append(c.Bundles, []byte(`{"not":"a bundle"}`))
	}
	if _, err := pack.Open(context.Background(), f.Build(t, c, f.Packer), f.Options()); err != nil {
		t.Fatalf("a pack of %d entries: %v", pack.MaxEntries, err)
	}
	c.Bundles = append(c.Bundles, []byte(`{"not":"a bundle"}`))
	_, err := pack.Build(context.Background(), c, func(ctx context.Context, st []byte) ([]byte, error) {
		t.Fatal("signed a pack no device reads")
		return nil, nil
	})
	if err == nil || !strings.Contains(err.Error(), "more than the 1024 entries a device reads") {
		t.Fatalf("Build of %d entries = %v; want refused", pack.MaxEntries+1, err)
	}
}
