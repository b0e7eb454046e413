package tlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/trust"
)

// NewCosignatureVerifier returns the note verifier for cosignatures
// (C2SP tlog-cosignature/v1) by the witness named name with key pub:
// transparency-dev/formats' cosignature/v1 verifier.
func NewCosignatureVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	return trust.CosignatureVerifier(name, pub)
}

// Witness cosigns checkpoints of logs it has checked for consistency.
// It is a note.Signer: transparency-dev/formats' cosignature/v1 signer,
// whose signature is the 8-byte big-endian time followed by the Ed25519
// signature of the cosigned message.
type Witness struct {
	s *fnote.Signer
}

func (w *Witness) Name() string                    { return w.s.Name() }
func (w *Witness) KeyHash() uint32                 { return w.s.KeyHash() }
func (w *Witness) Sign(msg []byte) ([]byte, error) { return w.s.Sign(msg) }

// NewWitness returns a witness named name signing with key.
func NewWitness(name string, key ed25519.PrivateKey) (*Witness, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("witness key is not an Ed25519 private key")
	}
	vkey, err := note.NewEd25519VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("invalid witness name %q: %w", name, err)
	}
	// The signer key in signed-note form: PRIVATE+KEY+name+hash+0x01||seed.
	hash := strings.Split(vkey, "+")[1]
	skey := "PRIVATE+KEY+" + name + "+" + hash + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...))
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("invalid witness key: %w", err)
	}
	return &Witness{s}, nil
}

// Verifier returns the note verifier of this witness's cosignatures, for
// Options.Witnesses.
func (w *Witness) Verifier() note.Verifier { return w.s.Verifier() }

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
	stored := 0
	for _, s := range n.Sigs {
		line := fmt.Sprintf("— %s %s\n", s.Name, s.Base64)
		key := fmt.Sprintf("%08x-%s", s.Hash, hex.EncodeToString([]byte(s.Name)))
		if err := l.hist.putCosignature(ctx, cp.Size, key, []byte(line)); err != nil {
			return stored, fmt.Errorf("couldn't store cosignature: %w", err)
		}
		stored++
		l.log.InfoContext(ctx, "cosignature stored", "size", cp.Size, "witness", s.Name)
	}
	return stored, nil
}

// cosignatures returns the stored cosignature lines for size.
func (l *Log) cosignatures(size uint64) []byte {
	out, err := l.hist.cosignatures(context.Background(), size)
	if err != nil {
		l.log.Warn("couldn't read cosignatures", "size", size, "err", err)
	}
	return out
}
