package cli

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/signer"
)

// decisionWriter signs decisions (VSA statements) and stores them: the
// deploy gate's and the admission webhook's.
type decisionWriter struct {
	// key signs locally when set; otherwise the server's signing service
	// (cl.Sign, a deployer token) signs and logs the decision.
	key crypto.Signer
	cl  *client.Client
	// dir, when set, receives each signed bundle as a file; otherwise a
	// locally signed bundle is pushed to cl (when there is one).
	dir string
	// attach, when set, stores each signed bundle beside an image too.
	attach func(ctx context.Context, bundle []byte) error
}

// write signs the statement vsa and stores the bundle, in dir under the
// name name(its SHA-256 hex) when dir is set. It returns the bundle's
// SHA-256 hex. A server error is returned as remoteErr.
func (w *decisionWriter) write(ctx context.Context, vsa []byte, name func(sha string) string) (string, error) {
	var b []byte
	var err error
	if w.key != nil {
		if b, err = signer.SignStatement(ctx, w.key, vsa); err != nil {
			return "", fmt.Errorf("couldn't sign decision: %w", err)
		}
	} else if b, err = w.cl.Sign(ctx, vsa); err != nil {
		return "", remoteErr(err, "sign decision")
	}
	sum := sha256.Sum256(b)
	sha := hex.EncodeToString(sum[:])
	if w.attach != nil {
		if err := w.attach(ctx, b); err != nil {
			return "", err
		}
	}
	if w.dir != "" {
		if err := os.MkdirAll(w.dir, 0o755); err != nil {
			return "", fmt.Errorf("couldn't store decision: %w", err)
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(w.dir, name(sha)), b, 0o644); err != nil {
			return "", fmt.Errorf("couldn't store decision: %w", err)
		}
	} else if w.key != nil && w.cl != nil {
		if _, _, err := w.cl.Push(ctx, b); err != nil {
			return "", remoteErr(err, "push decision")
		}
	}
	return sha, nil
}
