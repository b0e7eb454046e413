package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// searchWait is how long a search waits for a slot (Config.MaxSearches)
// before it is answered 503.
const searchWait = 10 * time.Second

// serveSearch answers a search one page at a time: at most limit records
// and about Config.MaxPageBytes of bundles, read from the index (which
// stops reading at the cap) and written record by record, each released
// once written. A search holds one of Config.MaxSearches slots until its
// answer is written, so the memory of all searches is bounded too.
func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	release, ok := s.searches.acquire(r.Context(), tokenFrom(r).Role, searchWait)
	if !ok {
		s.overloaded(w)
		return
	}
	defer release()
	switch {
	case q.Limit == 0:
		q.Limit = store.DefaultLimit
	case q.Limit > store.MaxLimit:
		q.Limit = store.MaxLimit
	}
	q.MaxBytes = s.cfg.MaxPageBytes
	found, err := s.index.Search(r.Context(), q)
	if errors.Is(err, store.ErrInvalidQuery) {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.logger.Error("search failed", "err", err)
		fail(w, http.StatusInternalServerError, "search failed")
		return
	}
	var next int64
	if n := len(found); n > 0 && (n >= q.Limit || pageBytes(found) >= q.MaxBytes) {
		next = found[n-1].ID
	}
	w.Header().Set("Content-Type", "application/json")
	if err := writeSearchResponse(w, found, next); err != nil {
		var encErr *encodeError
		if errors.As(err, &encErr) {
			s.logger.Error("search failed", "err", err)
			// Cut the connection: the client must not take a truncated
			// answer for a whole one.
			panic(http.ErrAbortHandler)
		}
		s.logger.Debug("search answer not delivered", "err", err)
	}
}

// pageBytes is the size of the bundles of found.
func pageBytes(found []*store.Evidence) int64 {
	var n int64
	for _, e := range found {
		n += int64(len(e.Bundle))
	}
	return n
}

// encodeError is a record that could not be encoded (as opposed to a
// client that went away).
type encodeError struct{ err error }

func (e *encodeError) Error() string { return e.err.Error() }

// writeSearchResponse writes SearchResponse for found and next to w, record
// by record, each as ToJSON encodes it except that the stored bundle bytes
// are written as they are (the last member, "bundle"), not decoded and
// re-encoded: encoding/json would validate and compact every bundle, the
// largest part of the response. The stored bytes are JSON: every bundle
// the index holds was parsed as a Sigstore bundle before it was stored
// (checkBundle, the server's own audit entries); one that is not (a damaged
// index) makes the whole response malformed, which clients refuse. Each
// record of found is dropped (set to nil) once written, so that a slow
// client holds less and less of the page.
func writeSearchResponse(w io.Writer, found []*store.Evidence, next int64) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString(`{"evidence":[`)
	for i, e := range found {
		if i > 0 {
			bw.WriteByte(',')
		}
		j := ToJSON(e)
		j.Bundle = nil
		rec, err := json.Marshal(j)
		if err != nil {
			return &encodeError{fmt.Errorf("couldn't encode evidence %d: %w", e.ID, err)}
		}
		// rec ends in the } that "bundle" (omitted, being empty) goes
		// before.
		if !bytes.HasSuffix(rec, []byte("}")) {
			return &encodeError{fmt.Errorf("couldn't encode evidence %d: unexpected encoding", e.ID)}
		}
		if len(bytes.TrimSpace(e.Bundle)) > 0 {
			bw.Write(rec[:len(rec)-1])
			bw.WriteString(`,"bundle":`)
			bw.Write(e.Bundle)
			rec = rec[len(rec)-1:]
		}
		if _, err := bw.Write(rec); err != nil {
			return err
		}
		found[i] = nil
	}
	bw.WriteString("]")
	if next > 0 {
		bw.WriteString(`,"next":` + strconv.FormatInt(next, 10))
	}
	bw.WriteString("}\n")
	return bw.Flush()
}
