package oci

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Error is every registry failure the Client returns: one line naming the
// registry and the reason. It never holds credentials or response bodies.
type Error struct {
	Registry string // host[:port]
	Reason   string // one line
	Err      error  // the cause, for errors.Is (context.DeadlineExceeded, ErrNotFound, ...)
}

func (e *Error) Error() string { return "registry " + e.Registry + ": " + e.Reason }
func (e *Error) Unwrap() error { return e.Err }

// ErrNotFound is wrapped when the registry says the image does not exist.
var ErrNotFound = errors.New("not found")

// ErrDigestMismatch is wrapped when a registry sends content that does not
// hash to the digest it was asked for.
var ErrDigestMismatch = errors.New("content does not match its digest")

// fail wraps err as an *Error for registry reg; what says what was being
// done ("resolving tag v1").
func fail(reg, what string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	reason, cause := explain(err)
	if what != "" {
		reason = what + ": " + reason
	}
	return &Error{Registry: reg, Reason: reason, Err: cause}
}

// explain turns an error from the HTTP stack or go-containerregistry into a
// short reason. Only status codes and OCI error codes of registry answers
// are kept: a hostile registry's message text is not repeated.
func explain(err error) (string, error) {
	var terr *transport.Error
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout():
		return "no answer in time (timeout)", context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return "canceled", context.Canceled
	case errors.Is(err, ErrTooLarge):
		return "sent more than custody reads (" + err.Error() + ")", ErrTooLarge
	case errors.Is(err, ErrDigestMismatch):
		return oneLine(err.Error()), ErrDigestMismatch
	case errors.As(err, &terr):
		return statusReason(terr), statusCause(terr.StatusCode)
	case errors.As(err, &uerr), errors.As(err, &herr):
		return "TLS certificate not trusted (pass the registry's CA bundle with --registry-ca)", err
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", err
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "speaks plain HTTP only (allow it with --insecure-registry)", err
	}
	return oneLine(err.Error()), err
}

func statusReason(terr *transport.Error) string {
	var codes []string
	for _, d := range terr.Errors {
		if len(codes) < 3 && validCode(string(d.Code)) {
			codes = append(codes, string(d.Code))
		}
	}
	s := fmt.Sprintf("HTTP %d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
	if len(codes) > 0 {
		s += " (" + strings.Join(codes, ", ") + ")"
	}
	switch terr.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		s += "; check the credentials for it in the Docker config"
	}
	return s
}

func statusCause(code int) error {
	if code == http.StatusNotFound {
		return ErrNotFound
	}
	return nil
}

// validCode accepts OCI error codes (MANIFEST_UNKNOWN) and nothing a
// registry could use to smuggle text into custody's output.
func validCode(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c == '_') {
			return false
		}
	}
	return true
}

// oneLine keeps the first line of s, at most 300 bytes (room for two
// digests and a reference).
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// isNotFound reports whether a registry answered 404.
func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
