// Package digest computes and parses the content digests custody records for
// artifacts: the "sha256"/"sha512" entries of an in-toto ResourceDescriptor
// digest set
// (https://github.com/in-toto/attestation/blob/main/spec/v1/digest_set.md).
//
// Files are hashed by streaming them through one pooled 1 MiB buffer, so
// memory use does not depend on file size, and throughput is that of
// crypto/sha256 (SHA-NI where the CPU has it).
package digest

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Algorithm names, as used in in-toto digest sets.
const (
	SHA256 = "sha256"
	SHA512 = "sha512"
)

// bufSize is the read size. Large reads amortise syscalls; 1 MiB keeps the
// buffer in L2 on most machines.
const bufSize = 1 << 20

// bufPool holds *[]byte of length bufSize, shared by concurrent hashes.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, bufSize)
	return &b
}}

// Digest is the digest of one artifact.
type Digest struct {
	Alg  string // SHA256 or SHA512
	Hex  string // lowercase hex
	Size int64  // bytes hashed; zero when unknown (e.g. from Parse)
}

// String returns the digest as "alg:hex", e.g. "sha256:e3b0…".
func (d Digest) String() string {
	return d.Alg + ":" + d.Hex
}

// hexLen returns the hex length of a digest of alg, or 0 when alg is not
// supported.
func hexLen(alg string) int {
	switch alg {
	case SHA256:
		return sha256.Size * 2
	case SHA512:
		return sha512.Size * 2
	}
	return 0
}

func newHash(alg string) (hash.Hash, error) {
	switch alg {
	case SHA256:
		return sha256.New(), nil
	case SHA512:
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported digest algorithm %q (want %s or %s)", alg, SHA256, SHA512)
}

// Parse parses "sha256:HEX" or "sha512:HEX". The hex must be lowercase and
// exactly as long as the algorithm's output. Parse is safe on untrusted
// input. The returned Digest has Size zero.
func Parse(s string) (Digest, error) {
	alg, hx, ok := strings.Cut(s, ":")
	if !ok {
		return Digest{}, fmt.Errorf("malformed digest %q: want ALG:HEX", truncate(s))
	}
	n := hexLen(alg)
	if n == 0 {
		return Digest{}, fmt.Errorf("malformed digest %q: unsupported algorithm (want %s or %s)", truncate(s), SHA256, SHA512)
	}
	if err := CheckHex(alg, hx); err != nil {
		return Digest{}, fmt.Errorf("malformed digest %q: %w", truncate(s), err)
	}
	return Digest{Alg: alg, Hex: hx}, nil
}

// CheckHex reports whether hx is a well-formed lowercase hex digest for alg.
func CheckHex(alg, hx string) error {
	n := hexLen(alg)
	if n == 0 {
		return fmt.Errorf("unsupported algorithm %q", alg)
	}
	if len(hx) != n {
		return fmt.Errorf("%s hex must be %d characters, got %d", alg, n, len(hx))
	}
	for i := 0; i < len(hx); i++ {
		c := hx[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%s hex must be lowercase hexadecimal", alg)
		}
	}
	return nil
}

// truncate keeps error messages about untrusted input short.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// File returns the SHA-256 digest of the file at path, reading it once in
// constant memory.
func File(path string) (Digest, error) {
	return file(context.Background(), path)
}

func file(ctx context.Context, path string) (Digest, error) {
	sums, size, err := hashFile(ctx, path, []string{SHA256})
	if err != nil {
		return Digest{}, err
	}
	return Digest{Alg: SHA256, Hex: sums[SHA256], Size: size}, nil
}

// FileAlgs reads the file at path once and returns its digest under each of
// algs (SHA256, SHA512), as a map from algorithm to lowercase hex. With no
// algs it computes SHA256 only.
func FileAlgs(path string, algs ...string) (map[string]string, error) {
	if len(algs) == 0 {
		algs = []string{SHA256}
	}
	sums, _, err := hashFile(context.Background(), path, algs)
	return sums, err
}

// hashFile streams the file through one hash per alg. ctx is checked between
// reads so a cancelled Files stops promptly even on huge files.
func hashFile(ctx context.Context, path string, algs []string) (map[string]string, int64, error) {
	hs := make([]hash.Hash, len(algs))
	for i, alg := range algs {
		h, err := newHash(alg)
		if err != nil {
			return nil, 0, err
		}
		hs[i] = h
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("couldn't open %s for hashing: %w", path, err)
	}
	defer f.Close()
	return hashOpen(ctx, f, path, hs, algs)
}

// Opened returns the SHA-256 digest of the open file f, read from its
// current offset; f must be a regular file. Callers that must not follow
// a path (a file opened beneath an os.Root) hash what they opened.
func Opened(ctx context.Context, f *os.File) (Digest, error) {
	h, _ := newHash(SHA256)
	sums, size, err := hashOpen(ctx, f, f.Name(), []hash.Hash{h}, []string{SHA256})
	if err != nil {
		return Digest{}, err
	}
	return Digest{Alg: SHA256, Hex: sums[SHA256], Size: size}, nil
}

func hashOpen(ctx context.Context, f *os.File, path string, hs []hash.Hash, algs []string) (map[string]string, int64, error) {
	if fi, err := f.Stat(); err != nil {
		return nil, 0, fmt.Errorf("couldn't stat %s: %w", path, err)
	} else if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("couldn't hash %s: not a regular file", path)
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var size int64
	// A plain read loop rather than io.CopyBuffer: *os.File implements
	// WriterTo, which would bypass our buffer for a small internal one.
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		n, err := f.Read(buf)
		if n > 0 {
			size += int64(n)
			for _, h := range hs {
				h.Write(buf[:n]) // hash.Hash.Write never fails
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("couldn't read %s: %w", path, err)
		}
	}
	sums := make(map[string]string, len(algs))
	var sum [sha512.Size]byte
	for i, alg := range algs {
		sums[alg] = hex.EncodeToString(hs[i].Sum(sum[:0]))
	}
	return sums, size, nil
}

// Files returns the SHA-256 digests of paths, in the same order, hashing up
// to workers files at once (workers <= 0 means GOMAXPROCS). The first error
// cancels the remaining work and is returned.
func Files(ctx context.Context, paths []string, workers int) ([]Digest, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([]Digest, len(paths))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i, p := range paths {
		g.Go(func() error {
			if err := gctx.Err(); err != nil { // canceled, or an earlier file failed
				return err
			}
			d, err := file(gctx, p)
			out[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
