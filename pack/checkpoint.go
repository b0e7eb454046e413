package pack

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	rnote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/trust"
)

// Checkpoint is a verified C2SP tlog-checkpoint
// (https://c2sp.org/tlog-checkpoint) of a log the trust root names.
type Checkpoint struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Hash   []byte `json:"hash"`
	// Cosignatures counts the signature lines besides the log's (witness
	// cosignatures, https://c2sp.org/tlog-cosignature), as the log served
	// them.
	Cosignatures int `json:"cosignatures"`
	// Witnesses names the witnesses the trust root lists (RoleWitness)
	// whose cosignatures of this checkpoint verified.
	Witnesses []string `json:"witnesses,omitempty"`
	// KeyHash is the note key hash of the log key that signed it: with
	// Origin, it tells apart two logs on one host (whose origins are
	// both the host), as the device's state does.
	KeyHash uint32 `json:"-"`
}

// ErrCheckpoint is returned (wrapped) for a checkpoint that is not signed
// by a trusted log, or bundles whose checkpoints do not fit it.
var ErrCheckpoint = errors.New("log checkpoint refused")

// logVerifiers returns a checkpoint verifier for each log: named after the
// host of its base URL (the log's origin, as sigstore-go and custody serve
// name it), with Rekor v2's key IDs.
func logVerifiers(logs []trust.TransparencyLog) []note.Verifier {
	var out []note.Verifier
	for _, l := range logs {
		u, err := url.Parse(l.BaseURL)
		if err != nil || u.Hostname() == "" {
			continue
		}
		sv, err := signature.LoadDefaultVerifier(l.PublicKey)
		if err != nil {
			continue
		}
		if v, err := rnote.NewNoteVerifier(u.Hostname(), sv); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// openCheckpoint verifies a signed checkpoint note against the logs and
// returns it with the note as the log's verifier opened it (its
// cosignature lines unverified, for trust.WitnessPolicy).
func openCheckpoint(b []byte, vs []note.Verifier) (*Checkpoint, *note.Note, error) {
	for _, v := range vs {
		c, _, n, err := log.ParseCheckpoint(b, v.Name(), v)
		if err != nil {
			continue
		}
		if len(c.Hash) != 32 || !strings.HasPrefix(n.Text, string(c.Marshal())) {
			return nil, nil, fmt.Errorf("%w: checkpoint of %s is not in canonical form", ErrCheckpoint, c.Origin)
		}
		return &Checkpoint{Origin: c.Origin, Size: c.Size, Hash: c.Hash, Cosignatures: len(n.UnverifiedSigs), KeyHash: v.KeyHash()}, n, nil
	}
	return nil, nil, fmt.Errorf("%w: not signed by a transparency log the trust root names", ErrCheckpoint)
}

// VerifyCheckpoint opens a signed checkpoint note as a device does (Open):
// signed by one of logs, each named after the host of its base URL.
func VerifyCheckpoint(b []byte, logs []trust.TransparencyLog) (*Checkpoint, error) {
	c, _, err := openCheckpoint(b, logVerifiers(logs))
	return c, err
}

// CheckWitnesses opens a signed checkpoint note as a device does (Open)
// under trust root d at now: signed by one of d's logs and cosigned as d's
// witness policy requires (trust.Document.WitnessPolicy). A checkpoint too
// few witnesses cosigned is an error wrapping ErrCheckpoint and
// trust.ErrWitnesses. Packers call it so that no pack a device would
// refuse is made.
func CheckWitnesses(b []byte, d *trust.Document, now time.Time) (*Checkpoint, error) {
	c, n, err := openCheckpoint(b, logVerifiers(d.Root.Tlogs))
	if err != nil {
		return nil, err
	}
	wp, err := d.WitnessPolicy(now)
	if err != nil {
		return nil, fmt.Errorf("%w: trust root version %d: %v", ErrContents, d.Version, err)
	}
	if err := witnessed(c, n, wp, now, fmt.Sprintf("the checkpoint of %s (size %d)", c.Origin, c.Size)); err != nil {
		return nil, err
	}
	return c, nil
}

// witnessed counts n's cosignatures against wp and names the witnesses
// in c; what names the checkpoint in the error.
func witnessed(c *Checkpoint, n *note.Note, wp *trust.WitnessPolicy, now time.Time, what string) error {
	cs, err := wp.Check(n, now, what)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	c.Witnesses = cs.Witnesses
	return nil
}

// encodeProof writes a consistency proof as one base64 hash per line.
func encodeProof(hashes [][]byte) []byte {
	var b bytes.Buffer
	for _, h := range hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// decodeProof reads encodeProof's form: at most 64 hashes of 32 bytes.
func decodeProof(b []byte) ([][]byte, error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) > 64 {
		return nil, errors.New("proof has more than 64 hashes")
	}
	var out [][]byte
	for _, l := range lines {
		h, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(h) != 32 {
			return nil, errors.New("proof line is not a base64 SHA-256 hash")
		}
		out = append(out, h)
	}
	return out, nil
}

// BundleCheckpoints returns the signed checkpoint notes that the
// inclusion proofs of a bundle's log entries end in (unverified).
func BundleCheckpoints(bundleJSON []byte) [][]byte {
	var pb protobundle.Bundle
	if len(bundleJSON) > MaxBytes || (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(bundleJSON, &pb) != nil {
		return nil
	}
	var out [][]byte
	for _, tle := range pb.GetVerificationMaterial().GetTlogEntries() {
		if env := tle.GetInclusionProof().GetCheckpoint().GetEnvelope(); env != "" {
			out = append(out, []byte(env))
		}
	}
	return out
}

// checkBundleCheckpoints holds every bundle's checkpoint of a log the pack
// has a checkpoint of to that checkpoint: not newer, the same hash at the
// same size, and consistent with it where the pack carries a proof. It
// returns how many bundle checkpoints were proven consistent and how many
// were older without a proof.
func checkBundleCheckpoints(bundles [][]byte, cps []*Checkpoint, proofs map[int]map[uint64][][]byte, vs []note.Verifier) (proven, unproven int, err error) {
	byOrigin := map[string]int{}
	for i, c := range cps {
		byOrigin[c.Origin] = i
	}
	for bi, b := range bundles {
		for _, env := range BundleCheckpoints(b) {
			bc, _, err := openCheckpoint(env, vs)
			if err != nil {
				continue // a log the trust does not name: gate rejects the bundle
			}
			i, ok := byOrigin[bc.Origin]
			if !ok {
				continue
			}
			pc := cps[i]
			switch {
			case bc.Size > pc.Size:
				return 0, 0, fmt.Errorf("%w: bundle/%04d's checkpoint of %s (size %d) is newer than the pack's (size %d)", ErrCheckpoint, bi, bc.Origin, bc.Size, pc.Size)
			case bc.Size == pc.Size && !bytes.Equal(bc.Hash, pc.Hash):
				return 0, 0, fmt.Errorf("%w: bundle/%04d's checkpoint of %s differs from the pack's at size %d (a forked log)", ErrCheckpoint, bi, bc.Origin, bc.Size)
			case bc.Size == pc.Size:
				proven++
			default:
				p, ok := proofs[i][bc.Size]
				if !ok {
					unproven++
					continue
				}
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, bc.Size, pc.Size, p, bc.Hash, pc.Hash); err != nil {
					return 0, 0, fmt.Errorf("%w: bundle/%04d's checkpoint of %s (size %d) is not consistent with the pack's (size %d): %v", ErrCheckpoint, bi, bc.Origin, bc.Size, pc.Size, err)
				}
				proven++
			}
		}
	}
	return proven, unproven, nil
}

// NewestCheckpoints returns, for each of logs, the newest checkpoint note
// (largest size) that a bundle's inclusion proof ends in: the checkpoints
// a pack made without a log to ask carries.
func NewestCheckpoints(bundles [][]byte, logs []trust.TransparencyLog) [][]byte {
	vs := logVerifiers(logs)
	newest := map[string]*Checkpoint{}
	notes := map[string][]byte{}
	var order []string
	for _, b := range bundles {
		for _, env := range BundleCheckpoints(b) {
			c, _, err := openCheckpoint(env, vs)
			if err != nil {
				continue
			}
			if old, ok := newest[c.Origin]; !ok || c.Size > old.Size {
				if !ok {
					order = append(order, c.Origin)
				}
				newest[c.Origin], notes[c.Origin] = c, env
			}
		}
	}
	var out [][]byte
	for _, o := range order {
		out = append(out, notes[o])
	}
	return out
}
