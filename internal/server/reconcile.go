package server

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
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
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// reconcile finishes the signing requests a crash interrupted (see Crash
// safety in the package documentation).
func (s *Server) reconcile(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(s.journal, "*.json"))
	if err != nil || len(files) == 0 {
		return err
	}
	cp, err := s.settledCheckpoint(ctx)
	if err != nil {
		return err
	}
	type pendingReq struct {
		path string
		b    *protobundle.Bundle
		kp   *signer.Keypair
	}
	pending := map[[32]byte]pendingReq{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("couldn't read journal: %w", err)
		}
		pb := new(protobundle.Bundle)
		if err := protojson.Unmarshal(raw, pb); err != nil {
			// A torn write cannot happen (files are renamed into place);
			// anything else unreadable was never acknowledged.
			s.logger.Warn("dropping unreadable journal file", "path", f, "err", err)
			os.Remove(f)
			continue
		}
		if len(pb.GetVerificationMaterial().GetTlogEntries()) > 0 {
			if err := s.indexJournalled(ctx, f, pb); err != nil {
				return err
			}
			continue
		}
		kp := s.keypairFor(pb)
		if kp == nil {
			// The server journals only what its own keys sign. A key
			// taken out of the configuration may come back: the entry
			// may be in the log, so the file is kept, not dropped.
			s.logger.Error("journal file signed by a key this server does not hold; kept for a restart with that key", "path", f,
				"key_hint", pb.GetVerificationMaterial().GetPublicKey().GetHint())
			continue
		}
		req, err := entryRequest(pb, kp)
		if err != nil {
			os.Remove(f)
			continue
		}
		body, _, err := tlog.CanonicalEntry(req)
		if err != nil {
			os.Remove(f)
			continue
		}
		var h [32]byte
		copy(h[:], rfc6962.DefaultHasher.HashLeaf(body))
		pending[h] = pendingReq{path: f, b: pb, kp: kp}
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
			pr, ok := pending[h]
			if !ok {
				continue
			}
			idx := n*layout.EntryBundleWidth + uint64(i)
			proof, err := s.log.InclusionProof(ctx, idx, cp.Size)
			if err != nil {
				return err
			}
			pr.b.VerificationMaterial.TlogEntries = append(pr.b.VerificationMaterial.TlogEntries, &protorekor.TransparencyLogEntry{
				LogIndex:          int64(idx),
				LogId:             &protocommon.LogId{KeyId: s.log.LogID()},
				KindVersion:       &protorekor.KindVersion{Kind: tlog.KindHashedRekord, Version: tlog.APIVersion},
				CanonicalizedBody: e,
				InclusionProof: &protorekor.InclusionProof{LogIndex: int64(idx), RootHash: cp.Hash, TreeSize: int64(cp.Size),
					Hashes: proof, Checkpoint: &protorekor.Checkpoint{Envelope: string(cp.Note)}},
			})
			if err := s.indexJournalled(ctx, pr.path, pr.b); err != nil {
				return err
			}
			delete(pending, h)
		}
	}
	for _, pr := range pending {
		s.logger.Info("dropping signing request that never reached the log", "path", pr.path)
		os.Remove(pr.path)
	}
	return nil
}

// indexJournalled indexes a journalled final bundle and removes its journal
// file.
func (s *Server) indexJournalled(ctx context.Context, path string, pb *protobundle.Bundle) error {
	out, err := encodeBundle(pb)
	if err != nil {
		return fmt.Errorf("couldn't encode journalled bundle: %w", err)
	}
	if err := writeFileAtomic(path, out, 0o600); err != nil {
		return err
	}
	stmt, err := attest.ParseStatement(pb.GetDsseEnvelope().GetPayload())
	if err != nil {
		return fmt.Errorf("journalled bundle %s: %w", path, err)
	}
	facts, _ := provenanceFacts(stmt)
	var pub = s.keypairFor(pb)
	tles := pb.GetVerificationMaterial().GetTlogEntries()
	ev := evidenceFor(out, stmt, facts, nil, tles[len(tles)-1])
	if pub != nil {
		ev.SignerKeyID = signer.KeyID(pub.GetPublicKey())
	}
	id, existed, err := s.index.Put(ctx, ev)
	if err != nil {
		return fmt.Errorf("couldn't index journalled bundle: %w", err)
	}
	s.logger.Info("recovered signed bundle", "id", id, "existed", existed, "log_index", ev.LogIndex)
	return os.Remove(path)
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
