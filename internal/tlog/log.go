package tlog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/custody-dev/custody/internal/crashpoint"
)

// Options configures a Log. Dir, Origin and Signer are required.
type Options struct {
	// Dir holds the log: Tessera's POSIX layout (checkpoint, tile/, .state/)
	// plus checkpoints/{size} (every published checkpoint) and
	// cosignatures/{size}/ (witness cosignature lines). Unused with MySQL.
	Dir string
	// MySQL, a mysql://USER@HOST:PORT/DATABASE URL (ParseMySQLURL), puts
	// the log in that database with Tessera's MySQL driver instead of
	// Dir: several processes (replicas) may then append to one log, each
	// sequencing under the database's row lock on the tree state, and the
	// checkpoint history and cosignatures live in tables beside it.
	MySQL string
	// Origin is the checkpoint origin line and the log's note key name.
	// For sigstore-go it must be the host name of the log's baseUrl.
	Origin string
	// Signer signs checkpoints: an Ed25519 or ECDSA key, in memory or in
	// a token (any crypto.Signer).
	Signer crypto.Signer
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// BatchMaxAge is how long entries wait to be sequenced together.
	// Default DefaultBatchMaxAge.
	BatchMaxAge time.Duration
	// CheckpointInterval is how often a new checkpoint is published while
	// the log grows; AddEntry waits for it. Default and minimum
	// MinCheckpointInterval, on MySQL too (Tessera's MySQL driver publishes
	// at most once a second; custody's publisher beside it publishes new
	// sizes at this interval: mysqlDriver).
	CheckpointInterval time.Duration
	// MaxEntryBytes bounds a write request. Default DefaultMaxEntryBytes.
	MaxEntryBytes int
	// Witnesses are the cosignature verifiers (see NewCosignatureVerifier)
	// whose cosignatures the log accepts and serves. Default none.
	Witnesses []note.Verifier
	// ValidFrom is the start of the log key's validity in the trusted
	// root instance. Default: the time Open was called.
	ValidFrom time.Time
}

// DedupEntries is how many recent entries the log remembers to answer a
// request for one of them with ErrDuplicate instead of appending it again
// (Tessera's in-memory antispam, as rekor-tiles uses it: an entry older
// than that, or from before a restart, is appended again).
const DedupEntries = 1 << 16

// ErrDuplicate is wrapped by AddEntry's error (a *DuplicateError) for an
// entry the log already holds: nothing is appended.
var ErrDuplicate = errors.New("an equivalent entry already exists in the transparency log")

// DuplicateError names the index of the entry a request duplicates. Its
// text is rekor-tiles' (Rekor v2 answers it with 409 and the index in the
// x-log-index header).
type DuplicateError struct{ Index uint64 }

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("an equivalent entry already exists in the transparency log with index %d", e.Index)
}

// Is makes a *DuplicateError match ErrDuplicate.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// MinCheckpointInterval is the default and smallest
// Options.CheckpointInterval (Tessera's minimum).
const MinCheckpointInterval = 100 * time.Millisecond

// DefaultBatchMaxAge is the default Options.BatchMaxAge.
const DefaultBatchMaxAge = 50 * time.Millisecond

// Log is a running transparency log. Its methods are safe for concurrent use.
type Log struct {
	opts     Options
	log      *slog.Logger
	verifier note.Verifier
	logID    []byte
	pubDER   []byte
	details  protocommon.PublicKeyDetails

	cancel   context.CancelFunc
	shutdown func(context.Context) error
	add      tessera.AddFn
	reader   tessera.LogReader
	awaiter  *tessera.PublicationAwaiter
	proofs   *proofCache
	hist     history
	db       *sql.DB // the MySQL log's database; nil for POSIX

	// published is the last checkpoint parsePublished verified; cpMu
	// serializes verifications, so that a new checkpoint is verified once
	// however many appends await it.
	published atomic.Pointer[Checkpoint]
	cpMu      sync.Mutex
}

// Open opens (creating if needed) the log in opts.Dir and starts
// sequencing. Call Close to stop it.
func Open(ctx context.Context, opts Options) (*Log, error) {
	if opts.Dir == "" && opts.MySQL == "" {
		return nil, errors.New("log directory not set")
	}
	if opts.BatchMaxAge <= 0 {
		opts.BatchMaxAge = DefaultBatchMaxAge
	}
	if opts.CheckpointInterval < MinCheckpointInterval {
		opts.CheckpointInterval = MinCheckpointInterval
	}
	if opts.MaxEntryBytes <= 0 {
		opts.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if opts.ValidFrom.IsZero() {
		opts.ValidFrom = time.Now()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	signer, err := newNoteSigner(opts.Origin, opts.Signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't use log key: %w", err)
	}
	pub := opts.Signer.Public()
	verifier, err := NewNoteVerifier(opts.Origin, pub)
	if err != nil {
		return nil, err
	}
	_, logID, err := keyHash(opts.Origin, pub)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode log public key: %w", err)
	}
	details, err := keyDetails(pub)
	if err != nil {
		return nil, err
	}
	l := &Log{opts: opts, log: logger, verifier: verifier, logID: logID, pubDER: der, details: details}
	// Every checkpoint Tessera signs is kept before it can be published.
	signer.after = l.recordCheckpoint

	tesseraInterval := opts.CheckpointInterval
	if opts.MySQL != "" {
		tesseraInterval = max(tesseraInterval, tesseraMySQLInterval)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	driver, err := l.openStorage(bg)
	if err != nil {
		cancel()
		return nil, err
	}
	appender, shutdown, reader, err := tessera.NewAppender(bg, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(tessera.DefaultBatchMaxSize, opts.BatchMaxAge).
		WithCheckpointInterval(tesseraInterval).
		WithCheckpointRepublishInterval(0).
		WithAntispam(DedupEntries, nil))
	if err != nil {
		cancel()
		l.closeDB()
		return nil, fmt.Errorf("couldn't start log: %w", err)
	}
	poll := 10 * time.Millisecond
	if l.db != nil {
		reader, poll = trimmingReader{reader}, 25*time.Millisecond
	}
	l.cancel, l.shutdown, l.add, l.reader = cancel, shutdown, appender.Add, reader
	l.proofs = &proofCache{read: l.readTile}
	l.awaiter = tessera.NewPublicationAwaiter(bg, reader.ReadCheckpoint, poll)
	logger.Info("transparency log open", "dir", opts.Dir, "mysql", opts.MySQL != "", "origin", opts.Origin)
	return l, nil
}

// openStorage opens the Tessera driver the options name (POSIX in Dir, or
// MySQL) and the history beside it.
func (l *Log) openStorage(ctx context.Context) (tessera.Driver, error) {
	if l.opts.MySQL != "" {
		db, err := openMySQL(ctx, l.opts.MySQL)
		if err != nil {
			return nil, err
		}
		d, err := newMySQLDriver(ctx, db, l.opts.CheckpointInterval, l.log)
		if err != nil {
			db.Close()
			return nil, err
		}
		l.db, l.hist = db, sqlHistory{db}
		return d, nil
	}
	l.hist = fileHistory{l.opts.Dir}
	for _, d := range []string{l.opts.Dir, filepath.Join(l.opts.Dir, "checkpoints"), filepath.Join(l.opts.Dir, "cosignatures")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("couldn't create log directory: %w", err)
		}
	}
	d, err := posix.New(ctx, posix.Config{Path: l.opts.Dir})
	if err != nil {
		return nil, fmt.Errorf("couldn't open log storage: %w", err)
	}
	return d, nil
}

func (l *Log) closeDB() {
	if l.db != nil {
		l.db.Close()
	}
}

func keyDetails(pub crypto.PublicKey) (protocommon.PublicKeyDetails, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return protocommon.PublicKeyDetails_PKIX_ED25519, nil
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, nil
		case 384:
			return protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384, nil
		case 521:
			return protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512, nil
		}
	}
	return 0, fmt.Errorf("unsupported log key type %T", pub)
}

// Close stops sequencing after integrating and publishing every entry
// already accepted.
func (l *Log) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := l.shutdown(ctx)
	l.cancel()
	l.closeDB()
	if err != nil {
		return fmt.Errorf("couldn't shut down log: %w", err)
	}
	return nil
}

// Origin returns the log's checkpoint origin.
func (l *Log) Origin() string { return l.opts.Origin }

// PublicKey returns the log's checkpoint key.
func (l *Log) PublicKey() crypto.PublicKey { return l.opts.Signer.Public() }

// Verifier returns the note verifier of the log's checkpoints.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// LogID returns the log ID used in TransparencyLogEntry.logId.keyId and in
// the trusted root: the full SHA-256 from which the checkpoint key ID is cut
// (as Rekor v2 computes it).
func (l *Log) LogID() []byte { return append([]byte(nil), l.logID...) }

// TrustedRootInstance describes the log for a Sigstore trusted_root.json
// transparencyLogs[] entry. baseURL's host name must be the log's origin
// for sigstore-go to verify its checkpoints.
func (l *Log) TrustedRootInstance(baseURL string) *prototrustroot.TransparencyLogInstance {
	return &prototrustroot.TransparencyLogInstance{
		BaseUrl:       baseURL,
		HashAlgorithm: protocommon.HashAlgorithm_SHA2_256,
		PublicKey: &protocommon.PublicKey{
			RawBytes:   append([]byte(nil), l.pubDER...),
			KeyDetails: l.details,
			ValidFor:   &protocommon.TimeRange{Start: timestamppb.New(l.opts.ValidFrom)},
		},
		LogId:           &protocommon.LogId{KeyId: l.LogID()},
		CheckpointKeyId: &protocommon.LogId{KeyId: l.LogID()[:4]},
	}
}

// AddEntry validates req, appends its entry, waits until a checkpoint
// commits to it and returns the Rekor v2 TransparencyLogEntry with an
// inclusion proof (integratedTime is 0: Rekor v2 has no integrated time).
// Errors wrap ErrInvalidEntry for rejected requests (nothing is stored) and
// tessera.ErrPushback when the log is overloaded. For an entry the log
// already holds (a request posted again) AddEntry appends nothing and
// returns the entry at its existing index, with a *DuplicateError: callers
// that only need the entry logged may take it.
func (l *Log) AddEntry(ctx context.Context, req *CreateEntryRequest) (*protorekor.TransparencyLogEntry, error) {
	if n := proto.Size(req); n > l.opts.MaxEntryBytes {
		return nil, invalid("request of %d bytes is over the limit of %d", n, l.opts.MaxEntryBytes)
	}
	body, kv, err := CanonicalEntry(req)
	if err != nil {
		return nil, err
	}
	added := l.add(ctx, tessera.NewEntry(body))
	idx, rawCP, err := l.awaiter.Await(ctx, func() (tessera.Index, error) {
		idx, err := added()
		if err == nil {
			crashpoint.Reach(crashpoint.LogSequenced)
		}
		return idx, err
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't add entry: %w", err)
	}
	cp, err := l.parsePublished(rawCP)
	if err != nil {
		return nil, fmt.Errorf("couldn't read published checkpoint: %w", err)
	}
	// The awaited checkpoint is published, so its size needs no check
	// against the published one; every entry awaiting it shares one proof
	// builder. The proof is verified before it is handed out.
	hashes, err := l.proofs.get(cp.Size).inclusion(ctx, idx.Index)
	if err != nil {
		return nil, err
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(body)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx.Index, cp.Size, leaf, hashes, cp.Hash); err != nil {
		return nil, fmt.Errorf("inclusion proof for entry %d does not verify: %w", idx.Index, err)
	}
	l.log.InfoContext(ctx, "entry added", "index", idx.Index, "kind", kv.Kind, "size", cp.Size, "dup", idx.IsDup)
	var dup error
	if idx.IsDup {
		dup = &DuplicateError{Index: idx.Index}
	}
	return &protorekor.TransparencyLogEntry{
		LogIndex:          int64(idx.Index),
		LogId:             &protocommon.LogId{KeyId: l.LogID()},
		KindVersion:       kv,
		IntegratedTime:    0,
		CanonicalizedBody: body,
		InclusionProof: &protorekor.InclusionProof{
			LogIndex:   int64(idx.Index),
			RootHash:   cp.Hash,
			TreeSize:   int64(cp.Size),
			Hashes:     hashes,
			Checkpoint: &protorekor.Checkpoint{Envelope: string(rawCP)},
		},
	}, dup
}

// Checkpoint returns the latest published checkpoint, with the stored
// witness cosignatures for its size appended to its note.
func (l *Log) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	raw, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't read checkpoint: %w", err)
	}
	cp, err := l.parsePublished(raw)
	if err != nil {
		return nil, err
	}
	cp.Note = append(cp.Note, l.cosignatures(cp.Size)...)
	return cp, nil
}

// WitnessedCheckpoint returns the newest checkpoint the log published
// that has stored cosignatures of at least k witnesses (k at least 1),
// with them appended, or, if none has, the latest checkpoint
// (Checkpoint). The log counts only cosignatures it verified when they
// were posted; clients verify them again against their own witness policy.
func (l *Log) WitnessedCheckpoint(ctx context.Context, k int) (*Checkpoint, error) {
	size, ok, err := l.hist.witnessed(ctx, max(k, 1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read cosignatures: %w", err)
	}
	if !ok {
		return l.Checkpoint(ctx)
	}
	return l.CheckpointAt(size)
}

// parsePublished parses and verifies a checkpoint read back from the log's
// storage. The signature of a given checkpoint is verified once: the last
// checkpoint verified is kept, and bytes equal to its note are answered
// from it. The result is the caller's to modify.
func (l *Log) parsePublished(raw []byte) (*Checkpoint, error) {
	if cp := l.published.Load(); cp != nil && bytes.Equal(cp.Note, raw) {
		return cp.clone(), nil
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if cp := l.published.Load(); cp != nil && bytes.Equal(cp.Note, raw) {
		return cp.clone(), nil
	}
	cp, err := ParseCheckpoint(raw, l.verifier)
	if err != nil {
		return nil, err
	}
	l.published.Store(cp.clone())
	return cp, nil
}

// ErrNoCheckpoint is returned by CheckpointAt for a size the log never
// published a checkpoint for.
var ErrNoCheckpoint = errors.New("no checkpoint of that size")

// CheckpointAt returns the checkpoint the log published for size, from its
// history, with stored cosignatures appended.
func (l *Log) CheckpointAt(size uint64) (*Checkpoint, error) {
	ctx := context.Background()
	raw, err := l.hist.checkpoint(ctx, size)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checkpoint of size %d: %w", size, ErrNoCheckpoint)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read checkpoint history: %w", err)
	}
	cp, err := ParseCheckpoint(raw, l.verifier)
	if err != nil {
		return nil, err
	}
	cp.Note = append(cp.Note, l.cosignatures(size)...)
	return cp, nil
}

// CheckpointSizes lists the sizes of the checkpoints the log published
// (its checkpoint history).
func (l *Log) CheckpointSizes(ctx context.Context) ([]uint64, error) {
	return l.hist.sizes(ctx)
}

// recordCheckpoint stores a checkpoint Tessera just signed, before Tessera
// publishes it; an error stops the publication.
func (l *Log) recordCheckpoint(msg, sig []byte) error {
	signed, err := signedNote(l.verifier, msg, sig)
	if err != nil {
		return err
	}
	cp, err := parseCheckpointBody(string(msg))
	if err != nil {
		return fmt.Errorf("signed a malformed checkpoint: %w", err)
	}
	wrote, err := l.hist.putCheckpoint(context.Background(), cp.Size, signed)
	if err != nil {
		return fmt.Errorf("couldn't record checkpoint: %w", err)
	}
	if wrote {
		l.log.Debug("checkpoint recorded", "size", cp.Size)
	}
	return nil
}

// signedNote assembles the signed note of msg signed by v's key.
func signedNote(v note.Verifier, msg, sig []byte) ([]byte, error) {
	signed, err := note.Sign(&note.Note{Text: string(msg)}, constSigner{v, sig})
	if err != nil {
		return nil, fmt.Errorf("couldn't encode checkpoint: %w", err)
	}
	return signed, nil
}

// constSigner is a note.Signer returning a signature made earlier.
type constSigner struct {
	note.Verifier
	sig []byte
}

func (c constSigner) Sign([]byte) ([]byte, error) { return c.sig, nil }
