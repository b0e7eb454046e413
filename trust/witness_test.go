package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// witness is a test witness: a name and an Ed25519 key.
type witness struct {
	name string
	key  ed25519.PrivateKey
}

func newWitness(t testing.TB, name string) witness {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return witness{name, k}
}

func (w witness) pub() ed25519.PublicKey { return w.key.Public().(ed25519.PublicKey) }

// cosign returns w's cosignature line over the checkpoint body at ts,
// written from C2SP tlog-cosignature/v1 (not with the verifier's library):
// key ID SHA-256(name || "\n" || 0x04 || key)[:4], then the big-endian
// timestamp and the Ed25519 signature of "cosignature/v1\ntime T\n" || body.
func (w witness) cosign(body string, ts time.Time) string {
	id := sha256.Sum256(append([]byte(w.name+"\n\x04"), w.pub()...))
	msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts.Unix(), body)
	sig := append(id[:4:4], binary.BigEndian.AppendUint64(nil, uint64(ts.Unix()))...)
	sig = append(sig, ed25519.Sign(w.key, []byte(msg))...)
	return "— " + w.name + " " + base64.StdEncoding.EncodeToString(sig) + "\n"
}

// logNote is a log: its signer and verifier, and checkpoint bodies.
type logNote struct {
	s note.Signer
	v note.Verifier
}

func newLog(t testing.TB) logNote {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "log.test")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return logNote{s, v}
}

func body(size int) string {
	h := sha256.Sum256([]byte(fmt.Sprint(size)))
	return fmt.Sprintf("log.test\n%d\n%s\n", size, base64.StdEncoding.EncodeToString(h[:]))
}

// signed returns the log's note of body with the cosignature lines.
func (l logNote) signed(t testing.TB, body string, lines ...string) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: body}, l.s)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, strings.Join(lines, "")...)
}

// witnessed returns a signed version 1 with witnesses ws and witness
// threshold k.
func witnessed(t testing.TB, k int, ws ...witness) *Document {
	t.Helper()
	a, b := mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P256())
	d := v1(t, a, b, mustECDSA(t, elliptic.P256()))
	d.Signatures = nil
	for _, w := range ws {
		d.Root.Keys = append(d.Root.Keys, Key{PublicKey: w.pub(), Role: RoleWitness, Identity: w.name})
	}
	d.WitnessThreshold = k
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	mustSign(t, d, a, b)
	return roundTrip(t, d)
}

// TestWitnessThreshold: a checkpoint counts the valid cosignatures of
// distinct witnesses the trust root lists; duplicates count once, and
// forged, unlisted, other checkpoints' and far-future cosignatures never.
func TestWitnessThreshold(t *testing.T) {
	a, b, c, stranger := newWitness(t, "a.example/w"), newWitness(t, "b.example/w"), newWitness(t, "c.example/w"), newWitness(t, "d.example/w")
	lg := newLog(t)
	cp, other := body(12), body(13)
	at := now.Add(-time.Minute)
	forged := func(line string) string { // the last signature byte changed
		f := strings.Fields(line)
		sig, _ := base64.StdEncoding.DecodeString(f[2])
		sig[len(sig)-1] ^= 1
		return "— " + f[1] + " " + base64.StdEncoding.EncodeToString(sig) + "\n"
	}
	// c's key under a's name: a second key claiming to be witness a
	impostor := witness{a.name, c.key}
	for _, tc := range []struct {
		name  string
		k     int
		lines []string
		want  []string // witnesses counted
		fail  string   // part of the error when not met
	}{
		{"k met by distinct witnesses", 2, []string{a.cosign(cp, at), c.cosign(cp, at)}, []string{a.name, c.name}, ""},
		{"all three", 3, []string{a.cosign(cp, at), b.cosign(cp, at), c.cosign(cp, at)}, []string{a.name, b.name, c.name}, ""},
		{"k not met", 2, []string{b.cosign(cp, at)}, []string{b.name}, "cosignatures of 1 witness(es), the trust root requires 2 (of the 3"},
		{"none", 1, nil, nil, "cosignatures of 0 witness(es), the trust root requires 1"},
		{"duplicates count once", 2, []string{a.cosign(cp, at), a.cosign(cp, at.Add(-time.Second)), a.cosign(cp, at)}, []string{a.name}, "a.example/w: cosigned more than once"},
		{"forged", 2, []string{a.cosign(cp, at), forged(b.cosign(cp, at))}, []string{a.name}, "b.example/w: cosignature does not verify"},
		{"unlisted", 2, []string{a.cosign(cp, at), stranger.cosign(cp, at)}, []string{a.name}, "d.example/w: not a witness the trust root lists"},
		{"another key under a listed name", 2, []string{b.cosign(cp, at), impostor.cosign(cp, at)}, []string{b.name}, "a.example/w: not a witness"},
		{"wrong checkpoint", 2, []string{a.cosign(cp, at), b.cosign(other, at)}, []string{a.name}, "b.example/w: cosignature does not verify over this checkpoint"},
		{"far future", 2, []string{a.cosign(cp, at), b.cosign(cp, now.Add(time.Hour))}, []string{a.name}, "b.example/w: cosignature timestamp " + now.Add(time.Hour).Format(time.RFC3339) + " is in the future"},
		{"slightly ahead clock", 2, []string{a.cosign(cp, at), b.cosign(cp, now.Add(MaxCosignatureSkew))}, []string{a.name, b.name}, ""},
		{"mixed", 2, []string{stranger.cosign(cp, at), forged(a.cosign(cp, at)), c.cosign(other, at), b.cosign(cp, now.Add(24*time.Hour)), impostor.cosign(cp, at), b.cosign(cp, at)}, []string{b.name}, "; 1 more)"},
		{"mixed, met", 2, []string{stranger.cosign(cp, at), forged(a.cosign(cp, at)), c.cosign(cp, at), b.cosign(cp, at), c.cosign(cp, at.Add(-time.Hour))}, []string{c.name, b.name}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := witnessed(t, tc.k, a, b, c)
			p, err := d.WitnessPolicy(now)
			if err != nil {
				t.Fatal(err)
			}
			n, err := note.Open(lg.signed(t, cp, tc.lines...), note.VerifierList(lg.v))
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Check(n, now, "checkpoint of log.test (size 12)")
			if fmt.Sprint(got.Witnesses) != fmt.Sprint(tc.want) {
				t.Errorf("counted %v, want %v (ignored %q)", got.Witnesses, tc.want, got.Ignored)
			}
			if len(tc.want) >= tc.k {
				if err != nil {
					t.Fatalf("Check = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrWitnesses) || !strings.Contains(err.Error(), tc.fail) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Check = %v; want one line wrapping ErrWitnesses with %q", err, tc.fail)
			}
		})
	}
}

// TestWitnessPolicyDefault: without a witness threshold, one cosignature
// is needed when the root lists a witness valid now, none otherwise.
func TestWitnessPolicyDefault(t *testing.T) {
	a := newWitness(t, "a.example/w")
	for _, tc := range []struct {
		name string
		d    *Document
		want int
	}{
		{"no witness keys", witnessed(t, 0), 0},
		{"one witness key", witnessed(t, 0, a), 1},
		{"threshold set", witnessed(t, 1, a), 1},
	} {
		p, err := tc.d.WitnessPolicy(now)
		if err != nil || p.Threshold != tc.want || p.Explicit != (tc.d.WitnessThreshold > 0) {
			t.Errorf("%s: policy %+v, %v; want threshold %d", tc.name, p, err, tc.want)
		}
	}
	// a witness whose key window ended is not counted on, and its absence
	// is what the error says
	d := witnessed(t, 1, a)
	d.Root.Keys[len(d.Root.Keys)-1].Window.End = now.Add(-time.Hour)
	p, _ := d.WitnessPolicy(now)
	lg := newLog(t)
	n, _ := note.Open(lg.signed(t, body(3), a.cosign(body(3), now)), note.VerifierList(lg.v))
	if _, err := p.Check(n, now, "checkpoint"); !errors.Is(err, ErrWitnesses) || !strings.Contains(err.Error(), "of the 0 it lists now") {
		t.Fatalf("a witness outside its window counted: %v", err)
	}
}

// TestWitnessThresholdDocument: the threshold is signed with the root,
// refused at 0, below 0 or above the witnesses listed, and a root without
// it keeps the bytes it had before the field existed.
func TestWitnessThresholdDocument(t *testing.T) {
	a, b := newWitness(t, "a.example/w"), newWitness(t, "b.example/w")
	d := witnessed(t, 2, a, b)
	if d.WitnessThreshold != 2 {
		t.Fatalf("round trip lost the witness threshold: %d", d.WitnessThreshold)
	}
	payload, _ := d.Payload()
	if !bytes.Contains(payload, []byte(`"threshold":2,"witnessThreshold":2,"keys"`)) {
		t.Fatalf("payload: %s", payload)
	}
	unset := witnessed(t, 0, a, b)
	if p, _ := unset.Payload(); bytes.Contains(p, []byte("witnessThreshold")) {
		t.Fatalf("an unset witness threshold is written: %s", p)
	}
	// A signature over the root without the field does not carry over.
	tampered := *unset
	tampered.WitnessThreshold = 1
	if err := VerifyDocument(&tampered, now); !errors.Is(err, ErrThreshold) {
		t.Fatalf("the admins' signatures cover no witness threshold, yet: %v", err)
	}

	for _, k := range []int{3, -1} {
		if err := witnessed(t, 0, a, b).SetWitnessThreshold(k); err == nil {
			t.Errorf("witness threshold %d of 2 witnesses accepted", k)
		}
	}
	// a revoked witness and a rotated one (same identity) do not add up
	r := witnessed(t, 0, a, b)
	r.Root.Keys = append(r.Root.Keys, Key{PublicKey: newWitness(t, "x").pub(), Role: RoleWitness, Identity: a.name})
	r.Root.Keys[len(r.Root.Keys)-2].CompromisedSince = now
	if err := r.SetWitnessThreshold(2); err == nil || !strings.Contains(err.Error(), "have 1") {
		t.Fatalf("a revoked witness or a second key of one witness counted: %v", err)
	}

	// Parsing refuses an explicit 0 or more than the witnesses listed,
	// even when the admins signed it.
	for _, tc := range []struct {
		from, to, want string
	}{
		{`"witnessThreshold":2`, `"witnessThreshold":0`, "witnessThreshold 0: must be at least 1"},
		{`"witnessThreshold":2`, `"witnessThreshold":-2`, "witnessThreshold -2: must be at least 1"},
		{`"witnessThreshold":2`, `"witnessThreshold":3`, "witness threshold 3 needs at least 3 witnesses"},
	} {
		p := bytes.Replace(payload, []byte(tc.from), []byte(tc.to), 1)
		env := fmt.Sprintf(`{"payloadType":%q,"payload":%q,"signatures":[]}`, DocumentPayloadType, base64.StdEncoding.EncodeToString(p))
		if _, err := ParseDocument([]byte(env)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ParseDocument = %v; want %q", tc.to, err, tc.want)
		}
	}

	// Setting it is an edit: the next version, signed again by k of n.
	e := witnessed(t, 0, a, b)
	if err := e.SetWitnessThreshold(2); err != nil {
		t.Fatal(err)
	}
	if e.Version != 2 || len(e.Signatures) != 0 || e.WitnessThreshold != 2 {
		t.Fatalf("edit: version %d, %d signatures, threshold %d", e.Version, len(e.Signatures), e.WitnessThreshold)
	}
}

// FuzzWitnessCount: whatever cosignature lines a checkpoint carries,
// counting never panics, never counts a witness twice, and counts only
// listed witnesses.
func FuzzWitnessCount(f *testing.F) {
	a, b := newWitness(f, "a.example/w"), newWitness(f, "b.example/w")
	d := witnessed(f, 2, a, b)
	p, err := d.WitnessPolicy(now)
	if err != nil {
		f.Fatal(err)
	}
	lg := newLog(f)
	cp := body(7)
	f.Add(lg.signed(f, cp, a.cosign(cp, now), b.cosign(cp, now)))
	f.Add(lg.signed(f, cp, a.cosign(cp, now), a.cosign(cp, now.Add(-time.Second))))
	f.Add(lg.signed(f, cp, b.cosign(body(8), now)))
	f.Add(lg.signed(f, cp, "— a.example/w AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		n, err := note.Open(msg, note.VerifierList(lg.v))
		if err != nil {
			return
		}
		c := p.Count(n, now)
		seen := map[string]bool{}
		for _, w := range c.Witnesses {
			if seen[w] || (w != a.name && w != b.name) {
				t.Fatalf("counted %v", c.Witnesses)
			}
			seen[w] = true
		}
		if len(c.Witnesses)+len(c.Ignored) != len(n.UnverifiedSigs) {
			t.Fatalf("%d counted + %d ignored != %d lines", len(c.Witnesses), len(c.Ignored), len(n.UnverifiedSigs))
		}
	})
}
