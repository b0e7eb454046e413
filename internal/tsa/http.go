package tsa

import (
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strings"
)

// Media types of RFC 3161 section 3.4.
const (
	QueryMediaType = "application/timestamp-query"
	ReplyMediaType = "application/timestamp-reply"
)

// Handler serves the RFC 3161 HTTP transport: a POST whose body is a DER
// TimeStampReq of Content-Type application/timestamp-query is answered with
// the DER TimeStampResp as application/timestamp-reply. It does not look at
// the URL path; mount it at Path.
//
// Failures are answered with one line of text/plain: 405 for a method other
// than POST, 415 for another content type, 413 for a body over
// MaxRequestSize, 400 for a request Timestamp rejects as malformed, and 500
// when the authority itself fails.
func (a *Authority) Handler() http.Handler {
	return http.HandlerFunc(a.serveHTTP)
}

func (a *Authority) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "method must be POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != QueryMediaType {
		httpError(w, http.StatusUnsupportedMediaType, "content type must be "+QueryMediaType)
		return
	}
	body, err := readLimited(r.Body)
	if err != nil {
		if errors.Is(err, ErrMalformedRequest) {
			httpError(w, http.StatusRequestEntityTooLarge, err.Error())
			return
		}
		httpError(w, http.StatusBadRequest, "couldn't read request body")
		return
	}
	resp, err := a.Timestamp(r.Context(), body)
	if err != nil {
		if errors.Is(err, ErrMalformedRequest) {
			a.log.Info("rejected timestamp request", slog.String("remote", r.RemoteAddr), slog.String("error", err.Error()))
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		a.log.Error("couldn't issue timestamp", slog.String("error", err.Error()))
		httpError(w, http.StatusInternalServerError, "timestamp authority failed; see its logs")
		return
	}
	w.Header().Set("Content-Type", ReplyMediaType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}

// httpError writes msg as a single line of text.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(strings.ReplaceAll(msg, "\n", " ") + "\n"))
}
