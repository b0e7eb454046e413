// Package witnessbench measures what a witness threshold costs a verifier:
// verifying a log checkpoint (ECDSA P-256, as custody serve signs it) and
// counting its witness cosignatures (Ed25519 cosignature/v1) with
// trust.WitnessPolicy, the calls pack.Open and tlog.Client.Checkpoint make,
// for 0 (the baseline: the log's signature only), 1, 3 and 5 witnesses,
// each requiring all of them. A sixth case has 5 witnesses listed, 3
// required, and 5 lines of which two are forged or unlisted.
//
//	go test -c -o /tmp/witness.test ./bench/witness
//	for i in 1 2 3 4 5 6; do /tmp/witness.test -test.run '^$' -test.bench . -test.benchtime 1s -test.cpu 1; done
//
// Each run measures every case once, in turn, so each ratio is against the
// baseline of the same run (results.md).
package witnessbench_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/trust"
)

type fixture struct {
	signed []byte
	logV   note.Verifier
	policy *trust.WitnessPolicy
}

// newFixture signs a checkpoint and appends the cosignatures of cosigners
// of the witnesses listed (the first listed of them), and a forged and an
// unlisted line when hostile.
func newFixture(b *testing.B, listed, cosigners, threshold int, hostile bool) fixture {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := tlog.NewNoteSigner("bench.local", k)
	logV, _ := tlog.NewNoteVerifier("bench.local", k.Public())
	text := "bench.local\n123456\n" + strings.Repeat("A", 43) + "=\n"
	signed, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		b.Fatal(err)
	}
	p := &trust.WitnessPolicy{Threshold: threshold, Explicit: threshold > 0}
	cosign := func(name string) (*tlog.Witness, []byte) {
		_, wk, _ := ed25519.GenerateKey(rand.Reader)
		w, _ := tlog.NewWitness(name, wk)
		_, line, err := w.Cosign(logV, signed, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return w, line
	}
	lines := []byte{}
	for i := range listed {
		w, line := cosign(fmt.Sprintf("w%d.bench", i))
		p.Witnesses = append(p.Witnesses, w.Verifier())
		if i < cosigners {
			if hostile && i == cosigners-1 {
				line = forge(line)
			}
			lines = append(lines, line...)
		}
	}
	if hostile {
		_, line := cosign("stranger.bench")
		lines = append(lines, line...)
	}
	return fixture{append(signed, lines...), logV, p}
}

// forge changes the last byte of a cosignature line's signature.
func forge(line []byte) []byte {
	f := strings.Fields(string(line))
	sig, _ := base64.StdEncoding.DecodeString(f[2])
	sig[len(sig)-1] ^= 1
	return []byte("— " + f[1] + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
}

// verify is what pack.Open and tlog.Client.Checkpoint do with a
// checkpoint: verify the log's signature, parse it, count the cosignatures.
func (f fixture) verify(b *testing.B, now time.Time) {
	_, _, n, err := log.ParseCheckpoint(f.signed, f.logV.Name(), f.logV)
	if err != nil {
		b.Fatal(err)
	}
	if f.policy.Threshold == 0 {
		return
	}
	if _, err := f.policy.Check(n, now, "checkpoint"); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkCheckpoint(b *testing.B) {
	now := time.Now()
	for _, c := range []struct {
		name                         string
		listed, cosigners, threshold int
		hostile                      bool
	}{
		{"witnesses=0", 0, 0, 0, false},
		{"witnesses=1", 1, 1, 1, false},
		{"witnesses=3", 3, 3, 3, false},
		{"witnesses=5", 5, 5, 5, false},
		{"3of5+forged+unlisted", 5, 4, 3, true},
	} {
		f := newFixture(b, c.listed, c.cosigners, c.threshold, c.hostile)
		b.Run(c.name, func(b *testing.B) {
			before := cpuTime()
			for b.Loop() {
				f.verify(b, now)
			}
			// CPU (user+sys) of the process per operation: what a loaded
			// machine's wall time hides.
			b.ReportMetric(float64((cpuTime()-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user+sys CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
