package pack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/custody-dev/custody/internal/fsutil"
)

// ErrRollback is returned (wrapped) by State.Check for a pack whose
// checkpoint is older than one the device has seen, or that forks from it.
var ErrRollback = errors.New("rolled-back pack")

// maxStateBytes bounds the state file.
const maxStateBytes = 1 << 20

// State is what a device remembers between verifications: the newest
// checkpoint it has seen of each log. It lives in one file, written
// atomically (0600).
type State struct {
	path string
	// Checkpoints maps a log to the newest checkpoint seen of it. A log is
	// its origin and its key, "ORIGIN+KEYHASH" (the note key hash, 8 hex
	// digits), as tlog.CheckpointStore tells logs apart: two logs on one
	// host share the origin (the host), not the key.
	Checkpoints map[string]Seen `json:"checkpoints,omitempty"`
	// Logs is what versions before Checkpoints kept: a log origin (its
	// host) to the newest checkpoint seen of it, without its key. It is
	// kept as read and never written to: a checkpoint of that origin is
	// held against it until its log has an entry in Checkpoints (see
	// seen), since nothing tells which of the origin's logs it was.
	Logs map[string]Seen `json:"logs"`
	// TrustRoot is the newest trust root version a pack verified under.
	TrustRoot int `json:"trustRootVersion"`
	// Policies maps an environment to the newest version of its signed
	// policy a pack carried.
	Policies map[string]int `json:"policies,omitempty"`
}

// view is what one pack shows the device: its checkpoints, the trust
// root version it verifies under, and its environment's policy version
// (0: none).
type view struct {
	cps       []*Checkpoint
	trustRoot int
	env       string
	policy    int
}

// Seen is a remembered checkpoint.
type Seen struct {
	Size uint64 `json:"size"`
	Hash []byte `json:"hash"`
}

// DefaultStatePath is $XDG_STATE_HOME/custody/edge-state.json, or
// ~/.local/state/custody/edge-state.json.
func DefaultStatePath() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("couldn't find a state directory (set XDG_STATE_HOME or pass --state): %w", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "custody", "edge-state.json"), nil
}

// LoadState reads the state at path; a missing file is an empty state (a
// device that has seen nothing yet). A damaged file is an error: the
// device never forgets what it saw by accident. So is a file that others
// than its owner may write (they could roll the device back). A symbolic
// link is followed, and the state is written where it points (e.g. on
// storage that survives updates); a link into a directory that does not
// exist is an error (its storage may not be mounted), not an empty state.
func LoadState(path string) (*State, error) {
	p, err := resolveState(path)
	if err != nil {
		return nil, err
	}
	s := &State{path: p, Logs: map[string]Seen{}}
	if err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

// resolveState follows symbolic links at path (at most 8) to the file the
// state lives in, whose directory must exist.
func resolveState(path string) (string, error) {
	p := path
	for range 8 {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			if p == path {
				return p, nil
			}
			if _, err := os.Stat(filepath.Dir(p)); err != nil {
				return "", fmt.Errorf("state %s is a symbolic link to %s, whose directory is missing (is its storage mounted?)", path, p)
			}
			return p, nil
		}
		t, err := os.Readlink(p)
		if err != nil {
			return "", fmt.Errorf("couldn't read state link %s: %w", p, err)
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		p = t
	}
	return "", fmt.Errorf("state %s is a symbolic link of more than 8 hops", path)
}

// read reads the file at s.path into s (nothing when it is missing).
func (s *State) read() error {
	b, err := fsutil.ReadFileLimited(s.path, maxStateBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("couldn't read state %s: %w", s.path, err)
	}
	if fi, err := os.Stat(s.path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("state %s is writable by others (mode %04o): whoever can write it can roll this device back (chmod 600 it)", s.path, fi.Mode().Perm())
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil || s.Logs == nil {
		return fmt.Errorf("state %s is damaged (restore it; deleting it forgets the checkpoints this device saw): %v", s.path, err)
	}
	return nil
}

// logKey names c's log in State.Checkpoints.
func logKey(c *Checkpoint) string { return fmt.Sprintf("%s+%08x", c.Origin, c.KeyHash) }

// seen returns the newest checkpoint s remembers of c's log: its entry
// under origin and key or, when there is none yet, the entry an older
// version kept under the origin alone. That entry was recorded of some
// log of this origin, and which one is not known; holding it against
// every log of the origin until each has its own entry is never an
// acceptance an upgrade would not have allowed before (dropping it would
// let an upgraded device go back), and only refuses, as before, a log
// sharing its host with a larger one. Once a log has its own entry it is
// at least as new as the old one (it was checked against it), so the old
// one no longer counts for that log.
func (s *State) seen(c *Checkpoint) (Seen, bool) {
	if e, ok := s.Checkpoints[logKey(c)]; ok {
		return e, true
	}
	e, ok := s.Logs[c.Origin]
	return e, ok
}

// Check refuses checkpoints older than the ones seen of the same log, or
// of the same size with another root hash.
func (s *State) Check(cps []*Checkpoint) error {
	for _, c := range cps {
		seen, ok := s.seen(c)
		switch {
		case !ok:
		case c.Size < seen.Size:
			return fmt.Errorf("%w: its checkpoint of %s has size %d, older than the %d this device has seen (%s)", ErrRollback, c.Origin, c.Size, seen.Size, s.path)
		case c.Size == seen.Size && !bytes.Equal(c.Hash, seen.Hash):
			return fmt.Errorf("%w: its checkpoint of %s at size %d differs from the one this device has seen (a forked log)", ErrRollback, c.Origin, c.Size)
		}
	}
	return nil
}

// check is Check, and refuses a trust root version, or a policy version
// of the environment, older than one seen.
func (s *State) check(v view) error {
	if err := s.Check(v.cps); err != nil {
		return err
	}
	if v.trustRoot < s.TrustRoot {
		return fmt.Errorf("%w: it verifies under trust root version %d, older than the version %d this device has seen", ErrRollback, v.trustRoot, s.TrustRoot)
	}
	if seen := s.Policies[v.env]; v.policy < seen {
		return fmt.Errorf("%w: it carries policy version %d of %s, older than the version %d this device has decided under", ErrRollback, v.policy, v.env, seen)
	}
	return nil
}

// newer reports whether v shows something newer than what s holds.
func (s *State) newer(v view) bool {
	if v.trustRoot > s.TrustRoot || v.policy > s.Policies[v.env] {
		return true
	}
	for _, c := range v.cps {
		if seen, ok := s.seen(c); !ok || c.Size > seen.Size {
			return true
		}
	}
	return false
}

// Record remembers cps where they are newer and the trust root version
// when newer (and record a pack's policy version too). When something changed it takes the state file's lock,
// reads the file again (another run of the device may have recorded
// since s was loaded), refuses cps as Check does against what it holds
// now (ErrRollback), and writes the newest of both, atomically and
// durably (synced before Record returns: an update installed after a
// power loss must not meet a state that forgot its pack). A state that
// cannot be written (a read-only file system) is an error: the pack is
// then refused.
func (s *State) Record(cps []*Checkpoint, trustRoot int) error {
	return s.record(view{cps: cps, trustRoot: trustRoot})
}

// record is Record of everything a pack shows (v).
func (s *State) record(v view) error {
	if !s.newer(v) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("couldn't write state: %w", err)
	}
	unlock, err := lockState(s.path + ".lock")
	if err != nil {
		return fmt.Errorf("couldn't lock state: %w", err)
	}
	defer unlock()
	now := &State{path: s.path, Logs: map[string]Seen{}}
	if err := now.read(); err != nil {
		return err
	}
	if err := now.check(v); err != nil {
		return err
	}
	if v.trustRoot > now.TrustRoot {
		now.TrustRoot = v.trustRoot
	}
	if v.policy > now.Policies[v.env] {
		if now.Policies == nil {
			now.Policies = map[string]int{}
		}
		now.Policies[v.env] = v.policy
	}
	for _, c := range v.cps {
		if seen, ok := now.seen(c); !ok || c.Size > seen.Size {
			if now.Checkpoints == nil {
				now.Checkpoints = map[string]Seen{}
			}
			now.Checkpoints[logKey(c)] = Seen{Size: c.Size, Hash: c.Hash}
		}
	}
	*s = *now
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileDurable(s.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("couldn't write state: %w", err)
	}
	return nil
}
