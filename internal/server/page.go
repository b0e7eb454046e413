package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/custody-dev/custody/internal/store"
)

// serveRecordPage answers a GET that lists records a page at a time: it
// reads the after and limit query parameters into *after and *limit, lists
// the records (ErrInvalidQuery is the caller's fault, 400) and answers the
// JSON page that page makes of them, never with a null list. what names the
// records in the log and in a 500 answer ("deployments").
func serveRecordPage[T any](s *Server, w http.ResponseWriter, r *http.Request, what string, after *int64, limit *int,
	list func(context.Context) ([]T, error), page func([]T) any) {
	v := r.URL.Query()
	var err error
	if a := v.Get("after"); a != "" {
		if *after, err = strconv.ParseInt(a, 10, 64); err != nil || *after < 0 {
			fail(w, http.StatusBadRequest, "after is not a record ID")
			return
		}
	}
	if l := v.Get("limit"); l != "" {
		if *limit, err = strconv.Atoi(l); err != nil || *limit < 0 {
			fail(w, http.StatusBadRequest, "limit is not a non-negative number")
			return
		}
	}
	records, err := list(r.Context())
	if errors.Is(err, store.ErrInvalidQuery) {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.logger.Error("couldn't list "+what, "err", err)
		fail(w, http.StatusInternalServerError, "couldn't list "+what)
		return
	}
	if records == nil {
		records = []T{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(page(records))
}
