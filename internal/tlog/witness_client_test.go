package tlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/tlog/mysqltest"
	"github.com/custody-dev/custody/trust"
)

// TestClientRequiresWitnesses: a client that requires 2 of 3 witnesses
// refuses the served checkpoint until two witnesses cosigned it through
// POST /cosignature, and never remembers a checkpoint that fell short: the
// checkpoint store keeps the last one that met the threshold.
func TestClientRequiresWitnesses(t *testing.T) {
	ctx := context.Background()
	var ws []*Witness
	var vs []note.Verifier
	for _, name := range []string{"w1.example", "w2.example", "w3.example"} {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		w, err := NewWitness(name, k)
		if err != nil {
			t.Fatal(err)
		}
		ws, vs = append(ws, w), append(vs, w.Verifier())
	}
	signer := newECDSAKey(t)
	l, err := Open(ctx, Options{Dir: t.TempDir(), Origin: testOrigin, Signer: signer, Witnesses: vs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	c, err := NewClient(srv.URL, testOrigin, signer.Public(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.RequireWitnesses(&trust.WitnessPolicy{Witnesses: vs, Threshold: 2, Explicit: true})
	store := NewCheckpointStore(filepath.Join(t.TempDir(), "checkpoints"))
	cosign := func(w *Witness, prev *Checkpoint) {
		t.Helper()
		cp := latest(t, l)
		var p [][]byte
		if prev != nil {
			if p, err = l.ConsistencyProof(ctx, prev.Size, cp.Size); err != nil {
				t.Fatal(err)
			}
		}
		_, line, err := w.Cosign(l.Verifier(), cp.Note, prev, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.AddCosignature(ctx, append(bytes.Clone(cp.Note), line...)); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(want string) {
		t.Helper()
		before, _ := store.Load(c.Verifier())
		_, err := c.Sync(ctx, store)
		if !errors.Is(err, trust.ErrWitnesses) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Sync = %v; want %q", err, want)
		}
		after, _ := store.Load(c.Verifier())
		if (before == nil) != (after == nil) || (before != nil && before.Size != after.Size) {
			t.Fatalf("a refused checkpoint was remembered: %v -> %v", before, after)
		}
	}

	add(t, l, "one")
	refused("has valid cosignatures of 0 witness(es), the trust root requires 2")
	cosign(ws[0], nil)
	refused("has valid cosignatures of 1 witness(es), the trust root requires 2 (of the 3")
	cosign(ws[0], nil) // again: one witness counts once
	refused("of 1 witness(es)")
	cosign(ws[1], nil)
	first, err := c.Sync(ctx, store)
	if err != nil {
		t.Fatalf("two of three witnesses cosigned: %v", err)
	}

	// A new entry: the log publishes size 2 before witnesses cosign it,
	// so the newest witnessed checkpoint (what the client gets) is still
	// size 1; the entry at index 1 is not covered by it.
	add(t, l, "two")
	if cp := latest(t, l); cp.Size != first.Size+1 {
		t.Fatalf("latest size %d, want %d", cp.Size, first.Size+1)
	}
	if w, err := l.WitnessedCheckpoint(ctx, 2); err != nil || w.Size != first.Size {
		t.Fatalf("WitnessedCheckpoint(2) = %v, %v; want size %d", w, err, first.Size)
	}
	// a client without a threshold remembers the unwitnessed size 2 in
	// the same store: the witnessed size 1 is proven consistent with it,
	// used, and not remembered over it
	unwitnessed, _ := NewClient(srv.URL, testOrigin, signer.Public(), nil)
	if _, err := unwitnessed.Sync(ctx, store); err != nil {
		t.Fatal(err)
	}
	again, err := c.Sync(ctx, store)
	if err != nil || again.Size != first.Size {
		t.Fatalf("Sync right after a new entry = %v, %v; want the witnessed size %d", again, err, first.Size)
	}
	if got, _ := store.Load(c.Verifier()); got.Size != first.Size+1 {
		t.Fatalf("store holds size %d, want %d", got.Size, first.Size+1)
	}
	if err := NotWitnessedError(first.Size, again.Size, 2); !errors.Is(err, trust.ErrWitnesses) ||
		!strings.Contains(err.Error(), "log entry 1 is not yet covered by a checkpoint 2 witness(es) cosigned (the newest has size 1); retry after the witnesses run") {
		t.Fatalf("NotWitnessedError = %v", err)
	}
	cosign(ws[0], first)
	if w, _ := l.WitnessedCheckpoint(ctx, 2); w.Size != first.Size {
		t.Fatalf("one cosignature of size 2 made it witnessed by 2: %d", w.Size)
	}
	cosign(ws[2], first)
	if w, _ := l.WitnessedCheckpoint(ctx, 2); w.Size != first.Size+1 {
		t.Fatalf("after two cosignatures, WitnessedCheckpoint(2) has size %d", w.Size)
	}
	second, err := c.Sync(ctx, store)
	if err != nil || second.Size != first.Size+1 {
		t.Fatalf("Sync = %v, %v", second, err)
	}
	// A server that serves an older witnessed checkpoint cannot rewind
	// the client: the store refuses it.
	if err := store.Save(c.Verifier(), first, nil); !errors.Is(err, ErrRollback) {
		t.Fatalf("Save of the older checkpoint = %v; want ErrRollback", err)
	}
	// No checkpoint has 3 cosignatures: the latest is served (and the
	// client counts, as before).
	if w, err := l.WitnessedCheckpoint(ctx, 3); err != nil || w.Size != second.Size {
		t.Fatalf("WitnessedCheckpoint(3) = %v, %v", w, err)
	}
	for _, q := range []string{"0", "x", "-1", "1001", ""} {
		if resp, _ := get(t, srv.URL+"/checkpoint?witnessed="+q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /checkpoint?witnessed=%s = %d; want 400", q, resp.StatusCode)
		}
	}

	// Without a policy (the default for clients) nothing is required.
	add(t, l, "three")
	plain, _ := NewClient(srv.URL, testOrigin, signer.Public(), nil)
	if _, err := plain.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCosignatureHostile: what POST /cosignature is sent that it must not
// store (a forged line of a listed witness, another checkpoint's
// cosignature at the same size, an oversized or malformed body) answers
// 400 and changes nothing the log serves; a replayed valid cosignature is
// stored once.
func TestCosignatureHostile(t *testing.T) {
	ctx := context.Background()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	w, err := NewWitness("w1.example", k)
	if err != nil {
		t.Fatal(err)
	}
	signer := newECDSAKey(t)
	l, err := Open(ctx, Options{Dir: t.TempDir(), Origin: testOrigin, Signer: signer, Witnesses: []note.Verifier{w.Verifier()}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	add(t, l, "one")
	cp := latest(t, l)
	_, line, err := w.Cosign(l.Verifier(), cp.Note, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	post := func(body []byte) int {
		t.Helper()
		resp, err := http.Post(srv.URL+"/cosignature", "text/plain", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	f := strings.Fields(string(line))
	sig, _ := base64.StdEncoding.DecodeString(f[2])
	sig[len(sig)-1] ^= 1
	forged := append(bytes.Clone(cp.Note), "— "+f[1]+" "+base64.StdEncoding.EncodeToString(sig)+"\n"...)
	// the witness's cosignature of a checkpoint of the same size with another root hash
	other := *cp
	other.Hash = bytes.Repeat([]byte{7}, 32)
	logSigner, err := NewNoteSigner(testOrigin, signer)
	if err != nil {
		t.Fatal(err)
	}
	otherNote, _ := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(other.Hash))}, logSigner)
	_, otherLine, err := w.Cosign(l.Verifier(), otherNote, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{
		"forged":           forged,
		"other checkpoint": append(bytes.Clone(otherNote), otherLine...),
		"moved line":       append(bytes.Clone(cp.Note), otherLine...),
		"oversized":        append(append(bytes.Clone(cp.Note), line...), bytes.Repeat([]byte("x"), maxCheckpointBytes)...),
		"malformed":        []byte("not a note\n"),
		"no log signature": append([]byte(string(cp.Body())+"\n"), line...),
	} {
		if code := post(body); code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: POST /cosignature = %d", name, code)
		}
		if _, served := get(t, srv.URL+"/checkpoint"); !bytes.Equal(served, cp.Note) {
			t.Fatalf("%s changed the served checkpoint:\n%s", name, served)
		}
	}
	for range 2 {
		if code := post(append(bytes.Clone(cp.Note), line...)); code != http.StatusOK {
			t.Fatalf("POST /cosignature = %d", code)
		}
	}
	if _, served := get(t, srv.URL+"/checkpoint"); !bytes.Equal(served, append(bytes.Clone(cp.Note), line...)) {
		t.Fatalf("a replayed cosignature is served twice or not at all:\n%s", served)
	}
}

// TestWitnessedWindow: GET /checkpoint?witnessed=K, which anyone may ask,
// looks at the newest witnessedWindow cosigned checkpoints only, in both
// histories (files; MySQL when CUSTODY_TEST_MARIADB is set).
func TestWitnessedWindow(t *testing.T) {
	check := func(t *testing.T, h history) {
		ctx := context.Background()
		for _, c := range []struct {
			size uint64
			key  string
		}{{5, "a"}, {5, "b"}, {6, "a"}, {7, "a"}} {
			if err := h.putCosignature(ctx, c.size, c.key, []byte("— "+c.key+" line\n")); err != nil {
				t.Fatal(err)
			}
		}
		defer func(w int) { witnessedWindow = w }(witnessedWindow)
		for _, c := range []struct {
			window, k int
			size      uint64
			ok        bool
		}{
			{1024, 2, 5, true}, {1024, 1, 7, true}, {1024, 3, 0, false},
			{3, 2, 5, true}, {2, 2, 0, false}, {2, 1, 7, true},
		} {
			witnessedWindow = c.window
			size, ok, err := h.witnessed(ctx, c.k)
			if err != nil || ok != c.ok || size != c.size {
				t.Errorf("window %d, k %d: witnessed = %d, %t, %v; want %d, %t", c.window, c.k, size, ok, err, c.size, c.ok)
			}
		}
	}
	t.Run("files", func(t *testing.T) { check(t, fileHistory{dir: t.TempDir()}) })
	t.Run("mysql", func(t *testing.T) {
		db := mysqltest.NewDatabase(t)
		l, err := Open(context.Background(), Options{MySQL: db, Origin: testOrigin, Signer: newECDSAKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		check(t, l.hist)
	})
}
