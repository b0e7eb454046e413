package tlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/fsutil"
)

// maxCheckpointBytes bounds a checkpoint note, cosignatures included.
const maxCheckpointBytes = 64 << 10

// Checkpoint is a parsed and verified C2SP tlog-checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   []byte // RFC 6962 root hash, 32 bytes
	// Note is the signed note as received, signature lines included.
	Note []byte
}

// Body returns the signed checkpoint text (origin, size, hash and any
// extension lines), without signatures.
func (c *Checkpoint) Body() []byte {
	i := bytes.Index(c.Note, []byte("\n\n"))
	if i < 0 {
		return nil
	}
	return c.Note[:i+1]
}

// clone returns a copy of c that shares no memory with it.
func (c *Checkpoint) clone() *Checkpoint {
	d := *c
	d.Hash = bytes.Clone(c.Hash)
	d.Note = bytes.Clone(c.Note)
	return &d
}

// ParseCheckpoint verifies the signed note signed by v (whose name must be
// the checkpoint's origin) and parses the checkpoint it carries, with
// transparency-dev/formats' log.ParseCheckpoint and custody's stricter
// rules on the text (checkCanonical). Signatures by other keys
// (cosignatures) are allowed and left unverified.
func ParseCheckpoint(signed []byte, v note.Verifier) (*Checkpoint, error) {
	cp, _, err := parseCheckpointNote(signed, v)
	return cp, err
}

// parseCheckpointNote is ParseCheckpoint that also returns the note as v
// opened it (its cosignature lines in UnverifiedSigs).
func parseCheckpointNote(signed []byte, v note.Verifier) (*Checkpoint, *note.Note, error) {
	if len(signed) > maxCheckpointBytes {
		return nil, nil, fmt.Errorf("checkpoint of %d bytes is too large", len(signed))
	}
	c, _, n, err := log.ParseCheckpoint(signed, v.Name(), v)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't verify checkpoint: %w", err)
	}
	if err := checkCanonical(n.Text, c); err != nil {
		return nil, nil, err
	}
	return &Checkpoint{Origin: c.Origin, Size: c.Size, Hash: c.Hash, Note: bytes.Clone(signed)}, n, nil
}

// parseCheckpointBody parses the text of a checkpoint note.
func parseCheckpointBody(text string) (*Checkpoint, error) {
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(text)); err != nil {
		return nil, err
	}
	if err := checkCanonical(text, &c); err != nil {
		return nil, err
	}
	return &Checkpoint{Origin: c.Origin, Size: c.Size, Hash: c.Hash}, nil
}

// checkCanonical holds the text of a checkpoint formats parsed as c to
// what C2SP tlog-checkpoint allows and formats does not check: the size in
// decimal without sign or leading zeros, the root hash 32 bytes of
// canonical base64, every line (extension lines too) non-empty and ended
// by a newline.
func checkCanonical(text string, c *log.Checkpoint) error {
	if len(c.Hash) != 32 {
		return errors.New("checkpoint root hash is not 32 bytes of base64")
	}
	if !strings.HasPrefix(text, string(c.Marshal())) {
		return errors.New("checkpoint size or root hash is not in canonical form")
	}
	if strings.Contains(text, "\n\n") || !strings.HasSuffix(text, "\n") {
		return errors.New("checkpoint has an empty line or does not end with a newline")
	}
	return nil
}

// writeIfAbsent atomically creates path (0600, creating its directory) with
// data unless it already exists, reporting whether it wrote.
func writeIfAbsent(path string, data []byte) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("couldn't create %s: %w", filepath.Dir(path), err)
	}
	return fsutil.CreateFileDurable(path, data, 0o600)
}
