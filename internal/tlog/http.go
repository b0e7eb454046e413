package tlog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"google.golang.org/protobuf/encoding/protojson"
)

const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cachePartial   = "public, max-age=60"
	cacheNone      = "no-cache"
	contentText    = "text/plain; charset=utf-8"
	contentTile    = "application/octet-stream"
)

// DuplicateIndexHeader is the header of a 409 answer to a duplicate
// entry that names the index of the entry already logged (rekor-tiles').
const DuplicateIndexHeader = "X-Log-Index"

// Handler returns the log's HTTP API; the paths are listed in the package
// documentation.
func (l *Log) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkpoint", l.serveCheckpoint)
	mux.HandleFunc("GET /checkpoints/{size}", l.serveHistory)
	mux.HandleFunc("GET /tile/entries/{rest...}", l.serveEntries)
	mux.HandleFunc("GET /tile/{level}/{rest...}", l.serveTile)
	mux.HandleFunc("GET /proof/inclusion", l.serveInclusion)
	mux.HandleFunc("GET /proof/consistency", l.serveConsistency)
	mux.HandleFunc("POST /api/v2/log/entries", l.serveAdd)
	mux.HandleFunc("POST /cosignature", l.serveCosignature)
	return mux
}

// fail writes a one-line error.
func fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", contentText)
	w.Header().Set("Cache-Control", cacheNone)
	w.WriteHeader(code)
	fmt.Fprintln(w, strings.ReplaceAll(msg, "\n", " "))
}

// maxWitnessedQuery bounds GET /checkpoint?witnessed=K: no trust root
// needs more witnesses than that.
const maxWitnessedQuery = 1000

func (l *Log) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	var cp *Checkpoint
	var err error
	if r.URL.Query().Has("witnessed") {
		k, qerr := queryUint(r, "witnessed")
		if qerr != nil || k < 1 || k > maxWitnessedQuery {
			fail(w, http.StatusBadRequest, fmt.Sprintf("query parameter witnessed is not a number from 1 to %d", maxWitnessedQuery))
			return
		}
		cp, err = l.WitnessedCheckpoint(r.Context(), int(k))
	} else {
		cp, err = l.Checkpoint(r.Context())
	}
	if err != nil {
		l.log.ErrorContext(r.Context(), "couldn't read checkpoint", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't read checkpoint")
		return
	}
	w.Header().Set("Content-Type", contentText)
	w.Header().Set("Cache-Control", cacheNone)
	w.Write(cp.Note)
}

func (l *Log) serveHistory(w http.ResponseWriter, r *http.Request) {
	size, err := strconv.ParseUint(r.PathValue("size"), 10, 64)
	if err != nil {
		fail(w, http.StatusBadRequest, "size is not a number")
		return
	}
	cp, err := l.CheckpointAt(size)
	if errors.Is(err, ErrNoCheckpoint) {
		fail(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		l.log.ErrorContext(r.Context(), "couldn't read checkpoint history", "size", size, "err", err)
		fail(w, http.StatusInternalServerError, "couldn't read checkpoint")
		return
	}
	w.Header().Set("Content-Type", contentText)
	// Cosignatures may still be added, so the response may change.
	w.Header().Set("Cache-Control", cacheNone)
	w.Write(cp.Note)
}

func (l *Log) serveTileBytes(w http.ResponseWriter, r *http.Request, b []byte, err error, p uint8) {
	if errors.Is(err, fs.ErrNotExist) {
		fail(w, http.StatusNotFound, "not found")
		return
	}
	if err != nil {
		l.log.ErrorContext(r.Context(), "couldn't read tile", "path", r.URL.Path, "err", err)
		fail(w, http.StatusInternalServerError, "couldn't read tile")
		return
	}
	w.Header().Set("Content-Type", contentTile)
	if p == 0 {
		w.Header().Set("Cache-Control", cacheImmutable)
	} else {
		w.Header().Set("Cache-Control", cachePartial)
	}
	w.Write(b)
}

func (l *Log) serveTile(w http.ResponseWriter, r *http.Request) {
	level, index, p, err := layout.ParseTileLevelIndexPartial(r.PathValue("level"), r.PathValue("rest"))
	if err != nil {
		fail(w, http.StatusBadRequest, "malformed tile path")
		return
	}
	b, err := l.reader.ReadTile(r.Context(), level, index, p)
	l.serveTileBytes(w, r, b, err, p)
}

func (l *Log) serveEntries(w http.ResponseWriter, r *http.Request) {
	index, p, err := layout.ParseTileIndexPartial(r.PathValue("rest"))
	if err != nil {
		fail(w, http.StatusBadRequest, "malformed entry bundle path")
		return
	}
	b, err := l.reader.ReadEntryBundle(r.Context(), index, p)
	l.serveTileBytes(w, r, b, err, p)
}

func queryUint(r *http.Request, name string) (uint64, error) {
	v, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("query parameter %s is not a number", name)
	}
	return v, nil
}

func (l *Log) writeProof(w http.ResponseWriter, r *http.Request, p [][]byte, err error) {
	if errors.Is(err, ErrBadRange) {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		l.log.ErrorContext(r.Context(), "couldn't build proof", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't build proof")
		return
	}
	w.Header().Set("Content-Type", contentText)
	w.Header().Set("Cache-Control", cacheImmutable)
	w.Write(MarshalProof(p))
}

func (l *Log) serveInclusion(w http.ResponseWriter, r *http.Request) {
	index, err := queryUint(r, "index")
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	size, err := queryUint(r, "size")
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := l.InclusionProof(r.Context(), index, size)
	l.writeProof(w, r, p, err)
}

func (l *Log) serveConsistency(w http.ResponseWriter, r *http.Request) {
	oldSize, err := queryUint(r, "old")
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	newSize, err := queryUint(r, "new")
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := l.ConsistencyProof(r.Context(), oldSize, newSize)
	l.writeProof(w, r, p, err)
}

// readBody reads at most limit bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(w, http.StatusBadRequest, fmt.Sprintf("request body is over the limit of %d bytes", limit))
		} else {
			fail(w, http.StatusBadRequest, "couldn't read request body")
		}
		return nil, false
	}
	return body, true
}

func (l *Log) serveAdd(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, l.opts.MaxEntryBytes)
	if !ok {
		return
	}
	req, err := ParseCreateEntryRequest(body, l.opts.MaxEntryBytes)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	tle, err := l.AddEntry(r.Context(), req)
	var dup *DuplicateError
	switch {
	case errors.As(err, &dup):
		// As rekor-tiles answers a duplicate: 409 and the existing index.
		w.Header().Set(DuplicateIndexHeader, strconv.FormatUint(dup.Index, 10))
		fail(w, http.StatusConflict, dup.Error())
		return
	case errors.Is(err, ErrInvalidEntry):
		l.log.InfoContext(r.Context(), "entry rejected", "err", err)
		fail(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, tessera.ErrPushback):
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, "log is overloaded, retry later")
		return
	case err != nil:
		l.log.ErrorContext(r.Context(), "couldn't add entry", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't add entry")
		return
	}
	out, err := protojson.Marshal(tle)
	if err != nil {
		fail(w, http.StatusInternalServerError, "couldn't encode entry")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write(out)
}

func (l *Log) serveCosignature(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, maxCheckpointBytes)
	if !ok {
		return
	}
	n, err := l.AddCosignature(r.Context(), body)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Content-Type", contentText)
	fmt.Fprintf(w, "stored %d cosignatures\n", n)
}

// MarshalProof encodes a proof as the proof endpoints serve it: one
// base64 hash per line.
func MarshalProof(p [][]byte) []byte {
	var b []byte
	for _, h := range p {
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	return b
}

// maxProofHashes bounds a proof: 64 levels each way is more than any log.
const maxProofHashes = 128

// ParseProof decodes the output of MarshalProof: lines of base64 SHA-256
// hashes.
func ParseProof(b []byte) ([][]byte, error) {
	if len(b) == 0 {
		return [][]byte{}, nil
	}
	if b[len(b)-1] != '\n' {
		return nil, errors.New("proof does not end with a newline")
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	if len(lines) > maxProofHashes {
		return nil, fmt.Errorf("proof has %d hashes, more than %d", len(lines), maxProofHashes)
	}
	p := make([][]byte, 0, len(lines))
	for i, line := range lines {
		// The decoder skips \r and \n inside its input; a hash line is
		// exactly the 44 characters of a padded base64 SHA-256, nothing else.
		if len(line) != base64.StdEncoding.EncodedLen(32) {
			return nil, fmt.Errorf("proof line %d is not a base64 SHA-256 hash", i+1)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(line)
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("proof line %d is not a base64 SHA-256 hash", i+1)
		}
		p = append(p, h)
	}
	return p, nil
}
