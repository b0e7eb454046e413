package server

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// reconcile finishes the signing requests and pushes a crash interrupted
// (see Crash safety in the package documentation).
func (s *Server) reconcile(ctx context.Context) error {
	return s.reconcileJournal(ctx, s.journal)
}

// reconcileJournal replays the journal documents named prefix*.json (of
// this server, or of a replica that died).
func (s *Server) reconcileJournal(ctx context.Context, prefix string) error {
	files, err := s.journalFiles(ctx, prefix)
	if err != nil || len(files) == 0 {
		return err
	}
	cp, err := s.settledCheckpoint(ctx)
	if err != nil {
		return err
	}
	pending := map[[32]byte]journalled{}
	for _, f := range files {
		j, err := s.readJournal(ctx, f)
		if err != nil {
			return err
		}
		switch {
		case j == nil:
		case j.body == nil:
			if err := s.indexJournalled(ctx, j); err != nil {
				return err
			}
		default:
			var h [32]byte
			copy(h[:], rfc6962.DefaultHasher.HashLeaf(j.body))
			pending[h] = *j
		}
	}
	if len(pending) == 0 {
		return nil
	}
	// Find the pending entries that reached the log.
	for n := uint64(0); n*layout.EntryBundleWidth < cp.Size && len(pending) > 0; n++ {
		p := layout.PartialTileSize(0, n, cp.Size)
		raw, err := s.readLog(ctx, "/"+layout.EntriesPath(n, p))
		if err != nil {
			return err
		}
		var eb api.EntryBundle
		if err := eb.UnmarshalText(raw); err != nil {
			return fmt.Errorf("couldn't read log entries: %w", err)
		}
		for i, e := range eb.Entries {
			var h [32]byte
			copy(h[:], rfc6962.DefaultHasher.HashLeaf(e))
			j, ok := pending[h]
			if !ok {
				continue
			}
			idx := n*layout.EntryBundleWidth + uint64(i)
			proof, err := s.log.InclusionProof(ctx, idx, cp.Size)
			if err != nil {
				return err
			}
			j.b.VerificationMaterial.TlogEntries = append(j.b.VerificationMaterial.TlogEntries, &protorekor.TransparencyLogEntry{
				LogIndex:          int64(idx),
				LogId:             &protocommon.LogId{KeyId: s.log.LogID()},
				KindVersion:       &protorekor.KindVersion{Kind: tlog.KindHashedRekord, Version: tlog.APIVersion},
				CanonicalizedBody: e,
				InclusionProof: &protorekor.InclusionProof{LogIndex: int64(idx), RootHash: cp.Hash, TreeSize: int64(cp.Size),
					Hashes: proof, Checkpoint: &protorekor.Checkpoint{Envelope: string(cp.Note)}},
			})
			if err := s.indexJournalled(ctx, &j); err != nil {
				return err
			}
			delete(pending, h)
		}
	}
	for _, j := range pending {
		s.logger.Info("dropping signing request that never reached the log", "path", j.path)
		s.removeJournal(j.path)
	}
	return nil
}

// journalled is a journal file: a bundle signed by one of the server's
// keys (a signing request or audit entry), or a pushed bundle being
// logged (NONCE.push.json).
type journalled struct {
	path string
	b    *protobundle.Bundle
	// body is the canonical body of the bundle's log entry while the
	// bundle holds no entry of this log; nil once it does (final).
	body []byte
}

// readJournal reads the journal file f. It returns nil (and logs why)
// for a file that is not replayed: an unreadable one (removed: files are
// renamed into place, so it was never acknowledged) or one signed by a key
// the server does not hold (kept).
func (s *Server) readJournal(ctx context.Context, f string) (*journalled, error) {
	raw, err := s.state.Get(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("couldn't read journal: %w", err)
	}
	j := &journalled{path: f, b: new(protobundle.Bundle)}
	if err := protojson.Unmarshal(raw, j.b); err != nil {
		s.logger.Warn("dropping unreadable journal file", "path", f, "err", err)
		s.removeJournal(f)
		return nil, nil
	}
	for _, tle := range j.b.GetVerificationMaterial().GetTlogEntries() {
		if bytes.Equal(tle.GetLogId().GetKeyId(), s.log.LogID()) {
			return j, nil
		}
	}
	if strings.HasSuffix(f, pushJournalSuffix) {
		// The entry is journalled before the bundle, so it is there.
		if j.body, err = s.state.Get(ctx, entryPath(f)); err != nil {
			return nil, fmt.Errorf("couldn't read journal: %w", err)
		}
		return j, nil
	}
	kp := s.keypairFor(j.b)
	if kp == nil {
		// The server journals only what its own keys sign. A key
		// taken out of the configuration may come back: the entry
		// may be in the log, so the file is kept, not dropped.
		s.logger.Error("journal file signed by a key this server does not hold; kept for a restart with that key", "path", f,
			"key_hint", j.b.GetVerificationMaterial().GetPublicKey().GetHint())
		return nil, nil
	}
	req, err := entryRequest(j.b, kp)
	if err == nil {
		j.body, _, err = tlog.CanonicalEntry(req)
	}
	if err != nil {
		s.logger.Warn("dropping journal file whose log entry cannot be made", "path", f, "err", err)
		s.removeJournal(f)
		return nil, nil
	}
	return j, nil
}

// indexJournalled indexes a journalled final bundle and removes its journal
// file. The final bundle replaces the journal file first, so that a crash
// during the replay indexes the same bytes again (Put is idempotent). The
// replacement is not synced (that cost 8 ms per entry, bench/restart): a
// killed process leaves its writes to the kernel; only a power loss during
// the replay could undo it, and the replay after it reads the same
// checkpoint and builds the same bundle, unless a witness cosigned in
// between. A pushed bundle is verified again, as its push would have.
func (s *Server) indexJournalled(ctx context.Context, j *journalled) error {
	out, err := encodeBundle(j.b)
	if err != nil {
		return fmt.Errorf("couldn't encode journalled bundle: %w", err)
	}
	if err := s.state.Put(ctx, j.path, out); err != nil {
		return fmt.Errorf("couldn't journal bundle: %w", err)
	}
	var ev *store.Evidence
	if strings.HasSuffix(j.path, pushJournalSuffix) {
		c, err := s.checkBundle(ctx, out)
		if err != nil {
			s.logger.Error("journalled pushed bundle no longer parses; not indexed", "path", j.path, "err", err)
			s.removeJournal(j.path)
			return nil
		}
		ev = c.ev
	} else {
		stmt, err := attest.ParseStatement(j.b.GetDsseEnvelope().GetPayload())
		if err != nil {
			return fmt.Errorf("journalled bundle %s: %w", j.path, err)
		}
		facts, _ := provenanceFacts(stmt)
		var pub crypto.PublicKey
		if kp := s.keypairFor(j.b); kp != nil {
			pub = kp.GetPublicKey()
		}
		tles := j.b.GetVerificationMaterial().GetTlogEntries()
		ev = evidenceFor(out, stmt, facts, pub, tles[len(tles)-1])
	}
	id, existed, err := s.index.Put(ctx, ev)
	if err != nil {
		return fmt.Errorf("couldn't index journalled bundle: %w", err)
	}
	s.logger.Info("recovered signed bundle", "id", id, "existed", existed, "log_index", ev.LogIndex)
	// Queued even when it was indexed before the crash: the red flags of
	// a build that has them already are not signed again.
	s.redFlags.indexed(ev, id, false)
	s.removeJournal(j.path)
	return nil
}

// keypairFor returns the key of the server's that signed the journalled
// bundle pb, by its hint: a builder key or the audit key (audit entries and
// deployers' decisions).
func (s *Server) keypairFor(pb *protobundle.Bundle) *signer.Keypair {
	hint := pb.GetVerificationMaterial().GetPublicKey().GetHint()
	keys := append([]crypto.Signer{s.auditKey}, slices.Collect(maps.Values(s.builders))...)
	for _, k := range keys {
		if id, _ := trust.KeyID(k.Public()); id == hint && hint != "" {
			kp, err := signer.NewKeypair(k)
			if err == nil {
				return kp
			}
		}
	}
	return nil
}

// settledCheckpoint waits until the log has published a checkpoint over
// everything it integrated before the restart.
func (s *Server) settledCheckpoint(ctx context.Context) (*tlog.Checkpoint, error) {
	if s.state.Shared() {
		// Replicas keep appending: wait for what was sequenced, not for
		// the log to stop growing.
		return s.log.Settled(ctx)
	}
	// Alone: first everything sequenced before the restart (a loaded
	// machine may integrate it after the log looked stable), then a
	// checkpoint that stopped growing.
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err := s.log.Settled(sctx)
	cancel()
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	interval := s.cfg.CheckpointInterval
	if interval < 100*time.Millisecond {
		interval = 100 * time.Millisecond
	}
	var last *tlog.Checkpoint
	for range 50 {
		cp, err := s.log.Checkpoint(ctx)
		if err != nil {
			return nil, err
		}
		if last != nil && last.Size == cp.Size {
			return cp, nil
		}
		last = cp
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(3 * interval):
		}
	}
	return last, nil
}

// readLog reads a path of the log's read API in process.
func (s *Server) readLog(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	w := &bufferWriter{header: http.Header{}, code: http.StatusOK}
	s.log.Handler().ServeHTTP(w, req)
	if w.code != http.StatusOK {
		return nil, fmt.Errorf("couldn't read %s from the log: %s", path, strings.TrimSpace(w.buf.String()))
	}
	return w.buf.Bytes(), nil
}

type bufferWriter struct {
	header http.Header
	code   int
	buf    bytes.Buffer
}

func (w *bufferWriter) Header() http.Header         { return w.header }
func (w *bufferWriter) Write(b []byte) (int, error) { return w.buf.Write(b) }
func (w *bufferWriter) WriteHeader(code int)        { w.code = code }
