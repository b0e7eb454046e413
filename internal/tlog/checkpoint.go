package tlog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
// the checkpoint's origin) and parses the checkpoint it carries. Signatures
// by other keys (cosignatures) are allowed and left unverified.
func ParseCheckpoint(signed []byte, v note.Verifier) (*Checkpoint, error) {
	if len(signed) > maxCheckpointBytes {
		return nil, fmt.Errorf("checkpoint of %d bytes is too large", len(signed))
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("couldn't verify checkpoint signature: %w", err)
	}
	cp, err := parseCheckpointBody(n.Text)
	if err != nil {
		return nil, err
	}
	if cp.Origin != v.Name() {
		return nil, fmt.Errorf("checkpoint origin %q is not %q", cp.Origin, v.Name())
	}
	cp.Note = append([]byte(nil), signed...)
	return cp, nil
}

// parseCheckpointBody parses the text of a checkpoint note.
func parseCheckpointBody(text string) (*Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 {
		return nil, errors.New("checkpoint has fewer than three lines")
	}
	for _, l := range lines[:len(lines)-1] {
		if l == "\n" {
			return nil, errors.New("checkpoint has an empty line")
		}
	}
	if lines[len(lines)-1] != "" {
		return nil, errors.New("checkpoint does not end with a newline")
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	sizeStr := strings.TrimSuffix(lines[1], "\n")
	if origin == "" {
		return nil, errors.New("checkpoint has an empty origin")
	}
	if sizeStr == "" || (len(sizeStr) > 1 && sizeStr[0] == '0') || strings.TrimLeft(sizeStr, "0123456789") != "" {
		return nil, fmt.Errorf("checkpoint size %q is not a decimal number", sizeStr)
	}
	size, err := strconv.ParseUint(sizeStr, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("checkpoint size %q: %w", sizeStr, err)
	}
	hash, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(hash) != 32 {
		return nil, errors.New("checkpoint root hash is not 32 bytes of base64")
	}
	return &Checkpoint{Origin: origin, Size: size, Hash: hash}, nil
}

// writeIfAbsent atomically creates path (0600, creating its directory) with
// data unless it already exists, reporting whether it wrote.
func writeIfAbsent(path string, data []byte) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("couldn't create %s: %w", filepath.Dir(path), err)
	}
	return fsutil.CreateFileDurable(path, data, 0o600)
}
