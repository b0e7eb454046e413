package tlog

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/trust"
)

// Client reads a log over HTTP and checks that it only ever grows.
type Client struct {
	base      *url.URL
	verifier  note.Verifier
	http      *http.Client
	witnesses *trust.WitnessPolicy
}

// NewClient returns a client of the log at baseURL whose checkpoints are
// signed by pub under origin. hc nil means http.DefaultClient.
func NewClient(baseURL, origin string, pub crypto.PublicKey, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("log URL %q is not an http(s) URL", baseURL)
	}
	v, err := NewNoteVerifier(origin, pub)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, verifier: v, http: hc}, nil
}

// RequireWitnesses makes every checkpoint Checkpoint returns (and so
// Update and Sync, which remember only what it returned) meet p: enough
// distinct witnesses' valid cosignatures (trust.WitnessPolicy.Check, at the
// time of the fetch), else an error wrapping trust.ErrWitnesses. nil or a
// zero threshold requires nothing. Call it before the client is used.
func (c *Client) RequireWitnesses(p *trust.WitnessPolicy) { c.witnesses = p }

// Verifier returns the note verifier of the log's checkpoints.
func (c *Client) Verifier() note.Verifier { return c.verifier }

func (c *Client) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	u := c.base.JoinPath(path)
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u = c.base.JoinPath(path[:i])
		u.RawQuery = path[i+1:]
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't build request: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("couldn't reach log: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("log answered %s for %s: %s", resp.Status, u.Path, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response for %s is over %d bytes", u.Path, limit)
	}
	return body, nil
}

// WitnessThreshold is the number of witnesses RequireWitnesses asked
// for (0: none).
func (c *Client) WitnessThreshold() int {
	if c.witnesses == nil {
		return 0
	}
	return c.witnesses.Threshold
}

// Checkpoint fetches and verifies the log's latest checkpoint. When
// RequireWitnesses asked for k witnesses, it is instead the newest
// checkpoint the log holds k cosignatures of (GET /checkpoint?witnessed=k;
// the log publishes before witnesses cosign), and its cosignatures are
// verified: entries appended since are not covered by it (NotWitnessedError).
func (c *Client) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	cp, n, err := c.fetchCheckpoint(ctx, c.WitnessThreshold())
	if err != nil {
		return nil, err
	}
	if c.witnesses != nil && c.witnesses.Threshold > 0 {
		if _, err := c.witnesses.Check(n, time.Now(), fmt.Sprintf("the log's checkpoint of %s at size %d", cp.Origin, cp.Size)); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// WitnessedCheckpoint fetches the newest checkpoint the log holds k
// witnesses' cosignatures of (the latest if none has; k 0: the latest) and
// verifies the log's signature only: counting the cosignatures is the
// caller's (the packer checks them against the pack's trust root).
func (c *Client) WitnessedCheckpoint(ctx context.Context, k int) (*Checkpoint, error) {
	cp, _, err := c.fetchCheckpoint(ctx, k)
	return cp, err
}

func (c *Client) fetchCheckpoint(ctx context.Context, k int) (*Checkpoint, *note.Note, error) {
	path := "checkpoint"
	if k > 0 {
		path += "?witnessed=" + strconv.Itoa(k)
	}
	b, err := c.get(ctx, path, maxCheckpointBytes)
	if err != nil {
		return nil, nil, err
	}
	return parseCheckpointNote(b, c.verifier)
}

// NotWitnessedError is an entry newer than the newest checkpoint enough
// witnesses cosigned.
func NotWitnessedError(index, size uint64, k int) error {
	return fmt.Errorf("%w: log entry %d is not yet covered by a checkpoint %d witness(es) cosigned (the newest has size %d); retry after the witnesses run (custody witness)",
		trust.ErrWitnesses, index, k, size)
}

// ConsistencyProof fetches the proof that the tree of size newSize extends
// the tree of size oldSize.
func (c *Client) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([][]byte, error) {
	b, err := c.get(ctx, "proof/consistency?old="+strconv.FormatUint(oldSize, 10)+"&new="+strconv.FormatUint(newSize, 10), 64<<10)
	if err != nil {
		return nil, err
	}
	return ParseProof(b)
}

// InclusionProof fetches the proof that entry index is in the tree of size
// treeSize.
func (c *Client) InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	b, err := c.get(ctx, "proof/inclusion?index="+strconv.FormatUint(index, 10)+"&size="+strconv.FormatUint(treeSize, 10), 64<<10)
	if err != nil {
		return nil, err
	}
	return ParseProof(b)
}

// Update fetches the latest checkpoint and, if last (the newest checkpoint
// the caller remembers; nil if none) is given, verifies that the log grew
// consistently from it. Errors wrap ErrRollback if the log is smaller than
// last and ErrInconsistent if it forked or rewrote history.
//
// With RequireWitnesses, the witnessed checkpoint may be older than last
// (which a client without a threshold remembered, or one before the
// witnesses fell behind): it is then proven consistent with last and
// returned, and last stays the one to remember.
func (c *Client) Update(ctx context.Context, last *Checkpoint) (*Checkpoint, error) {
	cp, _, _, err := c.update(ctx, last)
	return cp, err
}

// update is Update; older reports a witnessed checkpoint older than last
// (proven consistent with it), which is not to be remembered.
func (c *Client) update(ctx context.Context, last *Checkpoint) (cp *Checkpoint, proof [][]byte, older bool, err error) {
	cp, err = c.Checkpoint(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	if last == nil {
		return cp, nil, false, nil
	}
	if cp.Size < last.Size && c.WitnessThreshold() > 0 {
		var p [][]byte
		if cp.Size > 0 {
			if p, err = c.ConsistencyProof(ctx, cp.Size, last.Size); err != nil {
				return nil, nil, false, err
			}
		}
		if err := VerifyConsistency(cp, last, p); err != nil {
			return nil, nil, false, err
		}
		return cp, nil, true, nil
	}
	if cp.Size < last.Size {
		return nil, nil, false, VerifyConsistency(last, cp, nil)
	}
	p, err := c.ConsistencyProof(ctx, last.Size, cp.Size)
	if err != nil {
		return nil, nil, false, err
	}
	if err := VerifyConsistency(last, cp, p); err != nil {
		return nil, nil, false, err
	}
	return cp, p, false, nil
}

// Sync is Update with the remembered checkpoint kept in store: it loads
// the last checkpoint of this log, updates, and saves the new one.
//
// Syncs of one log through a store directory run one at a time, in a
// process and across processes (an flock on the checkpoint's lock file):
// two at once could each load the same checkpoint, and the second to save
// would then check its proof against the checkpoint the first saved
// instead of the one the proof starts from ("size1=size2, but proof is not
// empty"), failing a consistent log.
func (c *Client) Sync(ctx context.Context, store *CheckpointStore) (*Checkpoint, error) {
	store.mu.Lock()
	defer store.mu.Unlock()
	unlock, err := store.lock(c.verifier)
	if err != nil {
		return nil, err
	}
	defer unlock()
	last, err := store.Load(c.verifier)
	if err != nil {
		return nil, err
	}
	cp, p, older, err := c.update(ctx, last)
	if err != nil {
		return nil, err
	}
	if older {
		return cp, nil
	}
	if err := store.Save(c.verifier, cp, p); err != nil {
		return nil, err
	}
	return cp, nil
}

// CheckpointStore remembers the newest checkpoint seen of each log in a
// directory, one file per log: a log is its origin and its key (the note
// verifier's name and key hash), so two servers on one host, whose logs
// share the origin, are remembered apart. Checkpoints are public data;
// files are written atomically (0644) and never replaced by a smaller or
// inconsistent checkpoint.
type CheckpointStore struct {
	dir string
	mu  sync.Mutex // serializes Sync
}

// NewCheckpointStore returns a store in dir (created on first Save).
func NewCheckpointStore(dir string) *CheckpointStore { return &CheckpointStore{dir: dir} }

// lock takes an exclusive flock on the log's lock file (beside its
// checkpoint) and returns its release.
func (s *CheckpointStore) lock(v note.Verifier) (func(), error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("couldn't lock checkpoint: %w", err)
	}
	f, err := os.OpenFile(s.path(v)+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("couldn't lock checkpoint: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("couldn't lock checkpoint: %w", err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// path names the file of the log v verifies: the origin's file
// (legacyPath) plus the log key's hash, so that no two logs share a file.
func (s *CheckpointStore) path(v note.Verifier) string {
	return strings.TrimSuffix(s.legacyPath(v.Name()), ".checkpoint") + fmt.Sprintf("-%08x.checkpoint", v.KeyHash())
}

// legacyPath names the file custody clients kept an origin's checkpoint
// in before they told logs apart by key: a readable, sanitized origin
// plus a hash of the exact origin.
func (s *CheckpointStore) legacyPath(origin string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, origin)
	if len(safe) > 64 {
		safe = safe[:64]
	}
	sum := sha256.Sum256([]byte(origin))
	return filepath.Join(s.dir, safe+"-"+hex.EncodeToString(sum[:6])+".checkpoint")
}

// Load returns the remembered checkpoint of the log v verifies (v's name
// is the origin), or nil if there is none. A checkpoint remembered under
// the origin alone (by an older client) is taken when it verifies with v,
// and otherwise left alone: it is another log's of that origin. A
// checkpoint remembered for this origin and key that does not verify is
// an error naming the log, its key and the file.
func (s *CheckpointStore) Load(v note.Verifier) (*Checkpoint, error) {
	path := s.path(v)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if old, err := os.ReadFile(s.legacyPath(v.Name())); err == nil {
			if cp, err := ParseCheckpoint(old, v); err == nil {
				return cp, nil
			}
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read remembered checkpoint: %w", err)
	}
	cp, err := ParseCheckpoint(b, v)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint remembered for log %q with key %08x (%s) does not verify with that key: %w; "+
			"the file was changed or damaged: remove it to start over with this log, after checking with its operator that it was not rewound",
			v.Name(), v.KeyHash(), path, err)
	}
	return cp, nil
}

// Save remembers cp (verified again with v) if it is consistent, through
// proof, with the checkpoint already remembered. Errors wrap ErrRollback
// or ErrInconsistent and leave the stored checkpoint unchanged.
func (s *CheckpointStore) Save(v note.Verifier, cp *Checkpoint, proof [][]byte) error {
	checked, err := ParseCheckpoint(cp.Note, v)
	if err != nil {
		return err
	}
	last, err := s.Load(v)
	if err != nil {
		return err
	}
	if last != nil {
		if err := VerifyConsistency(last, checked, proof); err != nil {
			return err
		}
		if last.Size == checked.Size {
			return nil
		}
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("couldn't save checkpoint: %w", err)
	}
	if err := fsutil.WriteFileDurable(s.path(v), checked.Note, 0o644); err != nil {
		return fmt.Errorf("couldn't save checkpoint: %w", err)
	}
	return nil
}
