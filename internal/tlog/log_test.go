package tlog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

// hashedRekord returns a valid hashedrekord request for msg signed by a
// fresh ECDSA P-256 key.
func hashedRekord(t testing.TB, msg string) *CreateEntryRequest {
	t.Helper()
	k := newECDSAKey(t).(*ecdsa.PrivateKey)
	digest := sha256.Sum256([]byte(msg))
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{
			Digest: digest[:],
			Signature: &rekorpb.Signature{Content: sig, Verifier: &rekorpb.Verifier{
				Verifier:   &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}},
				KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
			}},
		}}}
}

func add(t testing.TB, l *Log, msg string) uint64 {
	t.Helper()
	tle, err := l.AddEntry(context.Background(), hashedRekord(t, msg))
	if err != nil {
		t.Fatalf("AddEntry: %v", err)
	}
	return uint64(tle.LogIndex)
}

func latest(t testing.TB, l *Log) *Checkpoint {
	t.Helper()
	cp, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestProofsAcrossSizes(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), newECDSAKey(t))
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	c, err := NewClient(srv.URL, testOrigin, l.PublicKey(), srv.Client())
	if err != nil {
		t.Fatal(err)
	}

	var leaves [][]byte
	var sizes []uint64
	addOne := func(msg string) {
		tle, err := l.AddEntry(ctx, hashedRekord(t, msg))
		if err != nil {
			t.Fatal(err)
		}
		for uint64(len(leaves)) <= uint64(tle.LogIndex) {
			leaves = append(leaves, nil)
		}
		leaves[tle.LogIndex] = rfc6962.DefaultHasher.HashLeaf(tle.CanonicalizedBody)
	}
	for i := range 4 {
		addOne(fmt.Sprint("entry ", i))
		sizes = append(sizes, latest(t, l).Size)
	}
	// A concurrent burst crosses the 256-entry tile boundary, so that full
	// tiles replace the partial ones older sizes were built from.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 270 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tle, err := l.AddEntry(ctx, hashedRekord(t, fmt.Sprint("burst ", i)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for uint64(len(leaves)) <= uint64(tle.LogIndex) {
				leaves = append(leaves, nil)
			}
			leaves[tle.LogIndex] = rfc6962.DefaultHasher.HashLeaf(tle.CanonicalizedBody)
		}()
	}
	wg.Wait()
	addOne("last")
	sizes = append(sizes, latest(t, l).Size)
	if got := latest(t, l).Size; got != 275 {
		t.Fatalf("size = %d, want 275", got)
	}

	for _, size := range sizes {
		cp, err := l.CheckpointAt(size)
		if err != nil {
			t.Fatalf("history at %d: %v", size, err)
		}
		t.Run(fmt.Sprint("inclusion at ", size), func(t *testing.T) {
			for _, i := range []uint64{0, size / 2, size - 1} {
				p, err := c.InclusionProof(ctx, i, size)
				if err != nil {
					t.Fatal(err)
				}
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, leaves[i], p, cp.Hash); err != nil {
					t.Errorf("index %d: %v", i, err)
				}
			}
		})
		for _, newer := range sizes {
			if newer < size {
				continue
			}
			t.Run(fmt.Sprintf("consistency %d to %d", size, newer), func(t *testing.T) {
				ncp, err := l.CheckpointAt(newer)
				if err != nil {
					t.Fatal(err)
				}
				p, err := c.ConsistencyProof(ctx, size, newer)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyConsistency(cp, ncp, p); err != nil {
					t.Error(err)
				}
			})
		}
	}
	t.Run("out of range", func(t *testing.T) {
		for _, q := range []string{"/proof/inclusion?index=275&size=275", "/proof/inclusion?index=0&size=276",
			"/proof/consistency?old=3&new=2", "/proof/consistency?old=1&new=999", "/proof/inclusion?index=x&size=1"} {
			resp, err := http.Get(srv.URL + q)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: status %d", q, resp.StatusCode)
			}
		}
	})
}

func get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestReadAPI(t *testing.T) {
	l := openLog(t, t.TempDir(), newEd25519Key(t))
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	add(t, l, "one")
	add(t, l, "two")

	for _, tc := range []struct {
		path, ctype, cache string
		code               int
	}{
		{"/checkpoint", contentText, cacheNone, 200},
		{"/tile/0/000.p/2", contentTile, cachePartial, 200},
		{"/tile/entries/000.p/2", contentTile, cachePartial, 200},
		{"/checkpoints/2", contentText, cacheNone, 200},
		{"/checkpoints/0", contentText, cacheNone, 200},
		{"/checkpoints/1000", contentText, cacheNone, 404},
		{"/tile/0/000", contentText, cacheNone, 404},
		{"/tile/0/abc", contentText, cacheNone, 400},
		{"/tile/0/000.p/0", contentText, cacheNone, 400},
		{"/tile/entries/x", contentText, cacheNone, 400},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path)
			if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != tc.ctype || resp.Header.Get("Cache-Control") != tc.cache {
				t.Errorf("got %d %q %q, want %d %q %q (%s)", resp.StatusCode, resp.Header.Get("Content-Type"),
					resp.Header.Get("Cache-Control"), tc.code, tc.ctype, tc.cache, body)
			}
			if strings.HasPrefix(tc.path, "/checkpoint") && tc.code == 200 {
				if _, err := ParseCheckpoint(body, l.Verifier()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	t.Run("full tile is immutable", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 256 {
			wg.Add(1)
			go func() { defer wg.Done(); add(t, l, fmt.Sprint("fill ", i)) }()
		}
		wg.Wait()
		for _, p := range []string{"/tile/0/000", "/tile/entries/000"} {
			resp, body := get(t, srv.URL+p)
			if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != cacheImmutable {
				t.Errorf("%s: %d %q", p, resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
			if p == "/tile/0/000" && len(body) != 256*32 {
				t.Errorf("full tile is %d bytes", len(body))
			}
		}
	})
}

func TestRejectedRequests(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(context.Background(), Options{Dir: dir, Origin: testOrigin, Signer: newECDSAKey(t), MaxEntryBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	add(t, l, "baseline")

	good := hashedRekord(t, "x")
	mutate := func(f func(hr *rekorpb.HashedRekordRequestV002)) string {
		r := hashedRekord(t, "y")
		f(r.GetHashedRekordRequestV002())
		b, err := protojson.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	goodJSON, _ := protojson.Marshal(good)
	for _, tc := range []struct{ name, body string }{
		{"empty", ""},
		{"not json", "hello"},
		{"empty object", "{}"},
		{"unknown field", strings.Replace(string(goodJSON), "{", `{"extra":1,`, 1)},
		{"oversized", `{"hashedRekordRequestV002":{"digest":"` + strings.Repeat("A", 8000) + `"}}`},
		{"bad signature", mutate(func(hr *rekorpb.HashedRekordRequestV002) { hr.Signature.Content[8] ^= 1 })},
		{"other digest", mutate(func(hr *rekorpb.HashedRekordRequestV002) { hr.Digest[0] ^= 1 })},
		{"short digest", mutate(func(hr *rekorpb.HashedRekordRequestV002) { hr.Digest = hr.Digest[:20] })},
		{"wrong key details", mutate(func(hr *rekorpb.HashedRekordRequestV002) {
			hr.Signature.Verifier.KeyDetails = protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384
		})},
		{"garbage key", mutate(func(hr *rekorpb.HashedRekordRequestV002) {
			hr.Signature.Verifier.GetPublicKey().RawBytes = []byte("nope")
		})},
		{"no verifier", mutate(func(hr *rekorpb.HashedRekordRequestV002) { hr.Signature.Verifier = nil })},
		{"dsse without verifiers", `{"dsseRequestV002":{"envelope":{"payload":"aGk=","payloadType":"t","signatures":[{"sig":"aGk="}]}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/api/v2/log/entries", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d: %s", resp.StatusCode, b)
			}
			if n := strings.Count(string(b), "\n"); n != 1 {
				t.Errorf("message has %d lines: %q", n, b)
			}
		})
	}
	next, err := l.reader.NextIndex(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if next != 1 || latest(t, l).Size != 1 {
		t.Errorf("log grew to %d after rejected requests", next)
	}
}

// dsseRequest is a DSSE request for payload signed by key, which must be
// ECDSA or Ed25519.
func dsseRequest(t *testing.T, key crypto.Signer, payload []byte) *CreateEntryRequest {
	t.Helper()
	pae := ssldsse.PAE("application/vnd.in-toto+json", payload)
	var sig []byte
	var err error
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		sig, err = key.Sign(rand.Reader, pae, crypto.Hash(0))
	} else {
		h := sha256.Sum256(pae)
		sig, err = key.Sign(rand.Reader, h[:], crypto.SHA256)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_DsseRequestV002{DsseRequestV002: &rekorpb.DSSERequestV002{
		Envelope: &protodsse.Envelope{Payload: payload, PayloadType: "application/vnd.in-toto+json",
			Signatures: []*protodsse.Signature{{Sig: sig}}},
		Verifiers: []*rekorpb.Verifier{{Verifier: &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}}}},
	}}}
}

// TestDSSERequestRefused: a DSSE v0.0.2 request, as cosign attest-blob
// sends it, is refused over HTTP with a one-line 400 that names
// hashedrekord (rekor-tiles v2.3.0's answer), valid or not, and nothing
// is appended: no verifier could check the entry it would become.
func TestDSSERequestRefused(t *testing.T) {
	l := openLog(t, t.TempDir(), newECDSAKey(t))
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	add(t, l, "baseline")
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	for name, req := range map[string]*CreateEntryRequest{
		"ecdsa":   dsseRequest(t, newECDSAKey(t), payload),
		"ed25519": dsseRequest(t, newEd25519Key(t), payload),
	} {
		if _, err := l.AddEntry(context.Background(), req); !errors.Is(err, ErrNotHashedRekord) || !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: AddEntry: %v, want ErrNotHashedRekord", name, err)
		}
		body, err := protojson.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(srv.URL+"/api/v2/log/entries", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "must be hashedrekord") || strings.Count(string(b), "\n") != 1 {
			t.Errorf("%s: %d %q, want one line of 400 naming hashedrekord", name, resp.StatusCode, b)
		}
	}
	if n := latest(t, l).Size; n != 1 {
		t.Errorf("log size %d after refused DSSE requests, want 1", n)
	}
}

// TestDuplicateEntry: the same hashedrekord request posted twice is
// appended once; the second answer is Rekor v2's for a duplicate: 409,
// the existing index in X-Log-Index, one line of text. AddEntry itself
// returns the logged entry with a *DuplicateError.
func TestDuplicateEntry(t *testing.T) {
	l := openLog(t, t.TempDir(), newECDSAKey(t))
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	add(t, l, "baseline")
	req := hashedRekord(t, "posted twice")
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	post := func() (*http.Response, string) {
		resp, err := http.Post(srv.URL+"/api/v2/log/entries", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, b := post(); resp.StatusCode != http.StatusCreated {
		t.Fatalf("first post: %d %s", resp.StatusCode, b)
	}
	resp, b := post()
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("X-Log-Index") != "1" ||
		b != "an equivalent entry already exists in the transparency log with index 1\n" {
		t.Errorf("second post: %d x-log-index=%q %q, want 409 naming index 1", resp.StatusCode, resp.Header.Get("X-Log-Index"), b)
	}
	tle, err := l.AddEntry(context.Background(), req)
	var dup *DuplicateError
	if !errors.As(err, &dup) || !errors.Is(err, ErrDuplicate) || dup.Index != 1 || tle == nil || tle.LogIndex != 1 {
		t.Errorf("AddEntry again: %v, %v; want the entry at 1 and a DuplicateError", tle, err)
	}
	if n := latest(t, l).Size; n != 2 {
		t.Errorf("log size %d, want 2 (the duplicate not appended)", n)
	}
}

// TestOldDSSEEntryStillProves: a log that holds a DSSE v0.0.2 entry,
// written by custody before it logged envelopes as hashedrekord, still
// proves its inclusion after a restart.
func TestOldDSSEEntryStillProves(t *testing.T) {
	old, err := os.ReadFile("testdata/dsse-entry-v0.0.2.json")
	if err != nil {
		t.Fatal(err)
	}
	old = bytes.TrimSuffix(old, []byte("\n"))
	dir, key := t.TempDir(), newECDSAKey(t)
	l := openLog(t, dir, key)
	add(t, l, "before")
	idx, _, err := l.awaiter.Await(context.Background(), l.add(context.Background(), tessera.NewEntry(old)))
	if err != nil {
		t.Fatal(err)
	}
	add(t, l, "after")
	l.Close()
	l = openLog(t, dir, key)
	defer l.Close()
	cp := latest(t, l)
	p, err := l.InclusionProof(context.Background(), idx.Index, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(old), p, cp.Hash); err != nil {
		t.Errorf("old DSSE entry %d of %d: %v", idx.Index, cp.Size, err)
	}
}

func TestRestartKeepsEntries(t *testing.T) {
	dir := t.TempDir()
	key := newECDSAKey(t)
	l := openLog(t, dir, key)
	for i := range 3 {
		add(t, l, fmt.Sprint("before ", i))
	}
	before := latest(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, key)
	defer l.Close()
	after := latest(t, l)
	if after.Size != 3 || !bytes.Equal(after.Hash, before.Hash) {
		t.Fatalf("after restart: size %d", after.Size)
	}
	if idx := add(t, l, "after"); idx != 3 {
		t.Errorf("new entry at %d, want 3", idx)
	}
	p, err := l.ConsistencyProof(context.Background(), 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(before, latest(t, l), p); err != nil {
		t.Error(err)
	}
	if _, err := l.CheckpointAt(3); err != nil {
		t.Errorf("history lost: %v", err)
	}
}

// logWith opens a log with n entries named prefix 0..n-1 and serves it.
func logWith(t *testing.T, key *ecdsa.PrivateKey, prefix string, n int) (*Log, *httptest.Server) {
	t.Helper()
	l := openLog(t, t.TempDir(), key)
	t.Cleanup(func() { l.Close() })
	for i := range n {
		add(t, l, fmt.Sprint(prefix, i))
	}
	srv := httptest.NewServer(l.Handler())
	t.Cleanup(srv.Close)
	return l, srv
}

func TestClientDetectsRollbackAndFork(t *testing.T) {
	ctx := context.Background()
	key := newECDSAKey(t).(*ecdsa.PrivateKey)
	_, honest := logWith(t, key, "a", 5)
	hc, err := NewClient(honest.URL, testOrigin, key.Public(), nil)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := hc.Update(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}

	_, rewound := logWith(t, key, "a", 3)
	_, forked := logWith(t, key, "b", 7)
	_, sameSizeFork := logWith(t, key, "c", 5)
	for _, tc := range []struct {
		name string
		srv  *httptest.Server
		want error
	}{
		{"rewound", rewound, ErrRollback},
		{"forked", forked, ErrInconsistent},
		{"same size fork", sameSizeFork, ErrInconsistent},
		{"honest", honest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(tc.srv.URL, testOrigin, key.Public(), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Update(ctx, seen)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("Update = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		c, err := NewClient(honest.URL, testOrigin, newECDSAKey(t).Public(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Checkpoint(ctx); err == nil {
			t.Error("checkpoint verified with another key")
		}
	})
}

func TestCheckpointStore(t *testing.T) {
	ctx := context.Background()
	key := newECDSAKey(t).(*ecdsa.PrivateKey)
	l, srv := logWith(t, key, "a", 2)
	_, rewound := logWith(t, key, "a", 1)
	_, forked := logWith(t, key, "b", 4)
	store := NewCheckpointStore(filepath.Join(t.TempDir(), "logs"))

	c, _ := NewClient(srv.URL, testOrigin, key.Public(), nil)
	if cp, err := c.Sync(ctx, store); err != nil || cp.Size != 2 {
		t.Fatalf("first sync: %v", err)
	}
	add(t, l, "a2")
	if cp, err := c.Sync(ctx, store); err != nil || cp.Size != 3 {
		t.Fatalf("second sync: %v", err)
	}
	file := store.path(c.Verifier())
	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		srv  *httptest.Server
		want error
	}{
		{"rewound", rewound, ErrRollback},
		{"forked", forked, ErrInconsistent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, _ := NewClient(tc.srv.URL, testOrigin, key.Public(), nil)
			if _, err := bad.Sync(ctx, store); !errors.Is(err, tc.want) {
				t.Errorf("Sync = %v, want %v", err, tc.want)
			}
			cp, err := bad.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Save(bad.Verifier(), cp, nil); !errors.Is(err, tc.want) {
				t.Errorf("Save = %v, want %v", err, tc.want)
			}
			now, _ := os.ReadFile(file)
			if !bytes.Equal(now, saved) {
				t.Error("stored checkpoint was overwritten")
			}
		})
	}
	got, err := store.Load(c.Verifier())
	if err != nil || got.Size != 3 {
		t.Errorf("Load = %v, %v", got, err)
	}
}

func TestWitnessCosigning(t *testing.T) {
	ctx := context.Background()
	_, wkey, _ := ed25519.GenerateKey(rand.Reader)
	w, err := NewWitness("witness.example", wkey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, Options{Dir: t.TempDir(), Origin: testOrigin, Signer: newECDSAKey(t), Witnesses: []note.Verifier{w.Verifier()}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	add(t, l, "one")
	first := latest(t, l)
	if _, _, err := w.Cosign(l.Verifier(), first.Note, nil, nil); err != nil {
		t.Fatal(err)
	}
	add(t, l, "two")
	second := latest(t, l)
	p, err := l.ConsistencyProof(ctx, first.Size, second.Size)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("inconsistent proof refused", func(t *testing.T) {
		bad := [][]byte{make([]byte, 32)}
		if _, _, err := w.Cosign(l.Verifier(), second.Note, first, bad); !errors.Is(err, ErrInconsistent) {
			t.Errorf("Cosign = %v", err)
		}
		if _, _, err := w.Cosign(l.Verifier(), first.Note, second, nil); !errors.Is(err, ErrRollback) {
			t.Errorf("Cosign of older = %v", err)
		}
	})

	_, line, err := w.Cosign(l.Verifier(), second.Note, first, p)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(srv.URL+"/cosignature", "text/plain", bytes.NewReader(append(bytes.Clone(second.Note), line...)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /cosignature: %d", resp.StatusCode)
	}
	_, served := get(t, srv.URL+"/checkpoint")
	if !bytes.HasSuffix(served, line) {
		t.Fatalf("served checkpoint lacks the cosignature:\n%s", served)
	}

	// Interoperability: transparency-dev's cosignature/v1 verifier agrees.
	pub := wkey.Public().(ed25519.PublicKey)
	vkey := fmt.Sprintf("%s+%08x+%s", w.Name(), w.KeyHash(), base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))
	fv, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(served, note.VerifierList(fv)); err != nil {
		t.Errorf("formats/note rejects the cosignature: %v", err)
	}

	t.Run("unknown witness refused", func(t *testing.T) {
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		ow, _ := NewWitness("other.example", other)
		_, line, err := ow.Cosign(l.Verifier(), second.Note, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.AddCosignature(ctx, append(bytes.Clone(second.Note), line...)); err == nil {
			t.Error("stored a cosignature from an unknown witness")
		}
	})
}

// TestConcurrentSync: syncs through one store directory at once all
// succeed on a consistent log (each used to check its proof against the
// checkpoint another had just saved).
func TestConcurrentSync(t *testing.T) {
	ctx := context.Background()
	key := newECDSAKey(t).(*ecdsa.PrivateKey)
	l, srv := logWith(t, key, "a", 2)
	store := NewCheckpointStore(filepath.Join(t.TempDir(), "logs"))
	c, _ := NewClient(srv.URL, testOrigin, key.Public(), nil)
	if _, err := c.Sync(ctx, store); err != nil {
		t.Fatal(err)
	}
	add(t, l, "a2")
	// Half through a second store on the same directory, as another
	// process would.
	other := NewCheckpointStore(store.dir)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		st := store
		if i%2 == 1 {
			st = other
		}
		wg.Go(func() {
			_, err := c.Sync(ctx, st)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Sync: %v", err)
		}
	}
}
