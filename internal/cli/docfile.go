package cli

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/trust"
)

// signedFile is a document that admins sign and that is kept in a file: a
// custody trust root or a signed policy envelope.
type signedFile interface {
	Sign(ctx context.Context, sg crypto.Signer) error
	Marshal() ([]byte, error)
}

// signFile adds the signature of the key keyRef (a file or a pkcs11: URI)
// to doc and writes doc to path. It returns the key's public key and, as
// loadSigner does, a release that is never nil, also on error: defer it.
func signFile(ctx context.Context, s *streams, keyRef, path string, doc signedFile) (crypto.PublicKey, func(), error) {
	sg, release, err := loadSigner(s, keyRef)
	if err != nil {
		return nil, release, err
	}
	if err := doc.Sign(ctx, sg); err != nil {
		return nil, release, usageErr(err, "")
	}
	if err := writeMarshaled(path, doc); err != nil {
		return nil, release, err
	}
	return sg.Public(), release, nil
}

// writeMarshaled marshals doc and writes it to path (see writeOut).
func writeMarshaled(path string, doc interface{ Marshal() ([]byte, error) }) error {
	b, err := doc.Marshal()
	if err != nil {
		return usageErr(err, "")
	}
	return writeOut(path, b)
}

// writeOut writes b to path atomically, readable by all (0o644); a failure
// is a usage error naming path.
func writeOut(path string, b []byte) error {
	if err := fsutil.WriteFileAtomic(path, b, 0o644); err != nil {
		return usageErr(fmt.Errorf("couldn't write %s: %w", path, err), "")
	}
	return nil
}

// samePayload reports whether two trust roots carry the same signed
// payload (the same document, whatever its signatures).
func samePayload(a, b *trust.Document) (bool, error) {
	p1, err1 := a.Payload()
	p2, err2 := b.Payload()
	if err := errors.Join(err1, err2); err != nil {
		return false, usageErr(err, "")
	}
	return bytes.Equal(p1, p2), nil
}

// readParsed reads the file at path (at most limit bytes) and parses it.
// Either failure is a usage error: "couldn't read WHAT: ..." or "PATH: ...".
func readParsed[T any](path string, limit int64, what string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := readLimited(path, limit)
	if err != nil {
		return zero, usageErr(fmt.Errorf("couldn't read %s: %w", what, err), "")
	}
	v, err := parse(b)
	if err != nil {
		return zero, usageErr(fmt.Errorf("%s: %w", path, err), "")
	}
	return v, nil
}
