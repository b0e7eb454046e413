package tlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// cosignatureKeyHash is the C2SP tlog-cosignature key ID:
// SHA-256(name || "\n" || 0x04 || key)[:4].
func cosignatureKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', sigTypeCosignature})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// cosignedMessage is what a tlog-cosignature/v1 signature covers.
func cosignedMessage(t uint64, body []byte) []byte {
	m := fmt.Appendf(nil, "cosignature/v1\ntime %d\n", t)
	return append(m, body...)
}

// cosigVerifier verifies C2SP tlog-cosignature/v1 signatures.
type cosigVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

// NewCosignatureVerifier returns the note verifier for cosignatures
// (C2SP tlog-cosignature/v1) by the witness named name with key pub.
func NewCosignatureVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	if !validName(name) {
		return nil, fmt.Errorf("invalid witness name %q", name)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("witness key is not an Ed25519 public key")
	}
	return &cosigVerifier{name: name, hash: cosignatureKeyHash(name, pub), pub: pub}, nil
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }

func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	return ed25519.Verify(v.pub, cosignedMessage(t, msg), sig[8:])
}

// Witness cosigns checkpoints of logs it has checked for consistency.
type Witness struct {
	name string
	key  ed25519.PrivateKey
	hash uint32
	now  func() time.Time
}

// NewWitness returns a witness named name signing with key.
func NewWitness(name string, key ed25519.PrivateKey) (*Witness, error) {
	if !validName(name) {
		return nil, fmt.Errorf("invalid witness name %q", name)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("witness key is not an Ed25519 private key")
	}
	pub := key.Public().(ed25519.PublicKey)
	return &Witness{name: name, key: key, hash: cosignatureKeyHash(name, pub), now: time.Now}, nil
}

// Verifier returns the note verifier of this witness's cosignatures, for
// Options.Witnesses.
func (w *Witness) Verifier() note.Verifier {
	v, _ := NewCosignatureVerifier(w.name, w.key.Public().(ed25519.PublicKey))
	return v
}

func (w *Witness) Name() string    { return w.name }
func (w *Witness) KeyHash() uint32 { return w.hash }

// Sign implements note.Signer: the signature is the 8-byte big-endian
// timestamp followed by the Ed25519 signature of the cosigned message.
func (w *Witness) Sign(msg []byte) ([]byte, error) {
	t := uint64(w.now().Unix())
	sig := binary.BigEndian.AppendUint64(nil, t)
	return append(sig, ed25519.Sign(w.key, cosignedMessage(t, msg))...), nil
}

// Cosign verifies checkpoint (a signed note) with the log's verifier and,
// if previous (the last checkpoint this witness saw of that log; nil when
// none) is given, that checkpoint is consistent with it through proof.
// It returns the parsed checkpoint and the cosignature line to append to
// the note ("— name base64\n"). Consistency errors wrap ErrRollback or
// ErrInconsistent.
func (w *Witness) Cosign(logVerifier note.Verifier, checkpoint []byte, previous *Checkpoint, proof [][]byte) (*Checkpoint, []byte, error) {
	cp, err := ParseCheckpoint(checkpoint, logVerifier)
	if err != nil {
		return nil, nil, err
	}
	if previous != nil {
		if err := VerifyConsistency(previous, cp, proof); err != nil {
			return nil, nil, err
		}
	}
	signed, err := note.Sign(&note.Note{Text: string(cp.Body())}, w)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't cosign checkpoint: %w", err)
	}
	return cp, signed[len(cp.Body())+1:], nil
}

// AddCosignature stores the cosignatures carried by cosigned (a checkpoint
// the log published, with cosignature lines appended) from the witnesses
// in Options.Witnesses, and returns how many it stored. Other signatures
// are ignored; it fails if none verifies.
func (l *Log) AddCosignature(ctx context.Context, cosigned []byte) (int, error) {
	if len(cosigned) > maxCheckpointBytes {
		return 0, fmt.Errorf("cosigned checkpoint of %d bytes is too large", len(cosigned))
	}
	cp, err := ParseCheckpoint(cosigned, l.verifier)
	if err != nil {
		return 0, err
	}
	published, err := l.CheckpointAt(cp.Size)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(published.Body(), cp.Body()) {
		return 0, fmt.Errorf("%w: checkpoint of size %d is not the one this log published", ErrInconsistent, cp.Size)
	}
	n, err := note.Open(cosigned, note.VerifierList(l.opts.Witnesses...))
	if err != nil {
		return 0, fmt.Errorf("no cosignature verifies: %w", err)
	}
	dir := filepath.Join(l.opts.Dir, "cosignatures", strconv.FormatUint(cp.Size, 10))
	stored := 0
	for _, s := range n.Sigs {
		line := fmt.Sprintf("— %s %s\n", s.Name, s.Base64)
		file := fmt.Sprintf("%08x-%s", s.Hash, hex.EncodeToString([]byte(s.Name)))
		if _, err := writeIfAbsent(filepath.Join(dir, file), []byte(line)); err != nil {
			return stored, fmt.Errorf("couldn't store cosignature: %w", err)
		}
		stored++
		l.log.InfoContext(ctx, "cosignature stored", "size", cp.Size, "witness", s.Name)
	}
	return stored, nil
}

// cosignatures returns the stored cosignature lines for size.
func (l *Log) cosignatures(size uint64) []byte {
	dir := filepath.Join(l.opts.Dir, "cosignatures", strconv.FormatUint(size, 10))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var out []byte
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			l.log.Warn("couldn't read cosignature", "size", size, "file", name, "err", err)
			continue
		}
		out = append(out, b...)
	}
	return out
}
