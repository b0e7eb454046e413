package logbench_test

// Per-operation cost of the log formats on the append path (issue 12
// item 4: checkpoints, notes, cosignatures and hashedrekord entries moved
// to transparency-dev/formats and rekor-tiles). Compare two builds in one
// run, alternating:
//
//	go test -c -o new.test ./bench/log    # and old.test from the other commit
//	./old.test -test.run XXX -test.bench 'CanonicalEntry|ParseCheckpoint|Cosign' -test.count 5 -test.cpu 1
//	./new.test ...; benchstat old.txt new.txt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/tlog"
)

// BenchmarkCanonicalEntry: validating a hashedrekord request (ECDSA P-256
// signature verified) and writing its leaf.
func BenchmarkCanonicalEntry(b *testing.B) {
	req := newSigner(b).req(b)
	for b.Loop() {
		if _, _, err := tlog.CanonicalEntry(req); err != nil {
			b.Fatal(err)
		}
	}
}

// signedCheckpoint is a checkpoint of the log bench.local signed with an
// ECDSA P-256 key, and its verifier.
func signedCheckpoint(b *testing.B) ([]byte, note.Verifier) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	s, err := tlog.NewNoteSigner("bench.local", k)
	if err != nil {
		b.Fatal(err)
	}
	v, err := tlog.NewNoteVerifier("bench.local", k.Public())
	if err != nil {
		b.Fatal(err)
	}
	text := "bench.local\n123456\n" + strings.Repeat("A", 43) + "=\n"
	signed, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		b.Fatal(err)
	}
	return signed, v
}

// BenchmarkParseCheckpoint: verifying and parsing the log's checkpoint.
func BenchmarkParseCheckpoint(b *testing.B) {
	signed, v := signedCheckpoint(b)
	for b.Loop() {
		if _, err := tlog.ParseCheckpoint(signed, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCosign: a witness verifying a checkpoint and cosigning it
// (tlog-cosignature/v1, Ed25519).
func BenchmarkCosign(b *testing.B) {
	signed, v := signedCheckpoint(b)
	_, wk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	w, err := tlog.NewWitness("witness.local", wk)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := w.Cosign(v, signed, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
