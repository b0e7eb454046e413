package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/tlog"
)

func durabilityStatement(t *testing.T, id string) []byte {
	sum := sha256.Sum256([]byte(id))
	st, err := attest.NewStatement([]attest.Subject{{Name: id, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		attest.PredicateSLSAv1, attest.ProvenanceV1{
			BuildDefinition: attest.BuildDefinition{BuildType: attest.BuildTypeCustody,
				ExternalParameters: attest.CustodyExternalParameters{Command: []string{"true"}}},
			RunDetails: attest.RunDetails{Builder: attest.Builder{ID: "https://custody.dev/builders/test@v1"},
				Metadata: &attest.BuildMetadata{InvocationID: id}},
		})
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startServe starts `custody serve` and waits for its URL line.
func startServe(t *testing.T, bin, dir, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data", dir, "--listen", addr)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "custody serving on") {
		cmd.Process.Kill()
		t.Fatalf("serve printed %q, %v", line, err)
	}
	return cmd
}

func TestServeDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills the server")
	}
	bin := filepath.Join(t.TempDir(), "custody")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/custody").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var tok bytes.Buffer
	tc := exec.Command(bin, "token", "create", "--role", "builder", "--data", dir)
	tc.Stdout = &tok
	if err := tc.Run(); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(tok.String())
	cmd := startServe(t, bin, dir, addr)
	url := "http://" + addr
	ctx := context.Background()
	c, err := client.New(url, token)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acked := map[string][]byte{} // build ID → bundle
	var lastCP *tlog.Checkpoint
	lc, err := c.Log(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				b, err := c.Sign(ctx, durabilityStatement(t, id))
				if err != nil {
					return // the server died
				}
				mu.Lock()
				acked[id] = b
				mu.Unlock()
				if cp, err := lc.Checkpoint(ctx); err == nil {
					mu.Lock()
					if lastCP == nil || cp.Size > lastCP.Size {
						lastCP = cp
					}
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once enough entries are acknowledged (count, not time).
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 40 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(stop)
	wg.Wait()

	cmd = startServe(t, bin, dir, addr)
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	lc2, err := c.Log(ctx) // consistency with what this client saw before
	if err != nil {
		t.Fatal(err)
	}
	cp, err := lc2.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lastCP != nil {
		p, err := lc2.ConsistencyProof(ctx, lastCP.Size, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyConsistency(lastCP, cp, p); err != nil {
			t.Fatalf("new checkpoint inconsistent with the last one before the kill: %v", err)
		}
	}
	t.Logf("%d acknowledged, log size %d", len(acked), cp.Size)

	// Every acknowledged entry is indexed and in the log at its index.
	for id, b := range acked {
		got, err := c.Search(ctx, api.Query{BuildID: id})
		if err != nil || len(got) != 1 {
			t.Fatalf("acknowledged %s: search = %d results, %v", id, len(got), err)
		}
		checkInLog(t, lc2, cp, b)
	}
	// The index agrees with the log: every record's entry is in the log at
	// its recorded index, and nothing in the index is beyond the log.
	all, err := c.Search(ctx, api.Query{Limit: api.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	// The restarted server keeps writing (red flags of the newest builds
	// are checked again at start): compare with a checkpoint read after
	// the index, which extends the first.
	later, err := lc2.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if later.Size > cp.Size {
		p, err := lc2.ConsistencyProof(ctx, cp.Size, later.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyConsistency(cp, later, p); err != nil {
			t.Fatalf("checkpoint after the index read inconsistent with the one before: %v", err)
		}
		cp = later
	}
	if uint64(len(all)) > cp.Size {
		t.Errorf("index has %d records, log %d entries", len(all), cp.Size)
	}
	for _, e := range all {
		idx := checkInLog(t, lc2, cp, e.Bundle)
		if idx != e.LogIndex {
			t.Errorf("record %d says log index %d, entry is at %d", e.ID, e.LogIndex, idx)
		}
	}
	if uint64(len(all)) != cp.Size {
		t.Logf("note: %d log entries, %d indexed (entries never acknowledged are not indexed)", cp.Size, len(all))
	}
}

// checkInLog verifies the bundle's entry is in the log of checkpoint cp.
func checkInLog(t *testing.T, lc *tlog.Client, cp *tlog.Checkpoint, bundleJSON []byte) int64 {
	t.Helper()
	var b bundle.Bundle
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		t.Fatal(err)
	}
	tle := b.GetVerificationMaterial().GetTlogEntries()[0]
	idx := uint64(tle.GetLogIndex())
	p, err := lc.InclusionProof(context.Background(), idx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.Size, rfc6962.DefaultHasher.HashLeaf(tle.GetCanonicalizedBody()), p, cp.Hash); err != nil {
		t.Fatalf("entry %d not in the log after restart: %v", idx, err)
	}
	return int64(idx)
}
