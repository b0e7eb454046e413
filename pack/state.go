package pack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	// Logs maps a log origin to the newest checkpoint seen of it.
	Logs map[string]Seen `json:"logs"`
	// TrustRoot is the newest trust root version a pack verified under.
	TrustRoot int `json:"trustRootVersion"`
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
// device never forgets what it saw by accident.
func LoadState(path string) (*State, error) {
	s := &State{path: path, Logs: map[string]Seen{}}
	b, err := fsutil.ReadFileLimited(path, maxStateBytes)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read state %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil || s.Logs == nil {
		return nil, fmt.Errorf("state %s is damaged (restore it; deleting it forgets the checkpoints this device saw): %v", path, err)
	}
	return s, nil
}

// Check refuses checkpoints older than the ones seen of the same log, or
// of the same size with another root hash.
func (s *State) Check(cps []*Checkpoint) error {
	for _, c := range cps {
		seen, ok := s.Logs[c.Origin]
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

// Record remembers cps where they are newer and the trust root version
// when newer, and writes the state atomically when something changed.
func (s *State) Record(cps []*Checkpoint, trustRoot int) error {
	changed := trustRoot > s.TrustRoot
	if changed {
		s.TrustRoot = trustRoot
	}
	for _, c := range cps {
		if seen, ok := s.Logs[c.Origin]; !ok || c.Size > seen.Size {
			s.Logs[c.Origin] = Seen{Size: c.Size, Hash: c.Hash}
			changed = true
		}
	}
	if !changed {
		return nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("couldn't write state: %w", err)
	}
	if err := fsutil.WriteFileAtomic(s.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("couldn't write state: %w", err)
	}
	return nil
}
