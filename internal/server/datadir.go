package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/internal/tsa"
	"github.com/custody-dev/custody/signer"
)

// meta is DIR/meta.json.
type meta struct {
	Created time.Time `json:"created"`
}

// loadMeta reads meta.json of st, creating it on first start (the first
// replica to start creates it; the others read it).
func loadMeta(ctx context.Context, st state.Store) (*meta, error) {
	const p = "meta.json"
	nm, _ := json.Marshal(&meta{Created: time.Now().UTC().Truncate(time.Second)})
	if _, err := st.Create(ctx, p, nm); err != nil {
		return nil, fmt.Errorf("couldn't create %s: %w", p, err)
	}
	b, err := st.Get(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("couldn't read data directory: %w", err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil || m.Created.IsZero() {
		return nil, fmt.Errorf("%s is malformed", p)
	}
	return &m, nil
}

// errSharedKeyMissing refuses to generate a key for one replica alone.
var errSharedKeyMissing = errors.New("replicas share their keys: deliver the same key file to every replica (or name a pkcs11: key), see docs/replicas.md")

// loadOrCreateKey reads the private key at path, or generates an ECDSA P-256
// key and writes it there (0600), encrypted when password is set; unless
// shared (replicas), where a missing key is an error.
func loadOrCreateKey(path string, password []byte, shared bool) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && shared {
		return nil, fmt.Errorf("%s: %w", path, errSharedKeyMissing)
	}
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		var out []byte
		if len(password) > 0 {
			if out, err = signer.EncryptPrivateKey(k, password); err != nil {
				return nil, fmt.Errorf("couldn't encrypt key: %w", err)
			}
		} else {
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				return nil, err
			}
			out = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		}
		if err := writeFileAtomic(path, out, 0o600); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read key: %w", err)
	}
	return parseKeyFile(path, b, password)
}

// parseKeyFile reads a PKCS#8 "PRIVATE KEY" PEM file or a Sigstore encrypted
// key.
func parseKeyFile(path string, b, password []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s is not a PEM private key", path)
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("couldn't parse %s: %w", path, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s holds a %T, not a signing key", path, k)
		}
		return s, nil
	case signer.PrivateKeyPEMType, signer.LegacyPrivateKeyPEMType:
		if len(password) == 0 {
			return nil, fmt.Errorf("%s is encrypted and CUSTODY_SERVER_PASSWORD is not set", path)
		}
		s, err := signer.DecryptPrivateKey(b, password)
		if err != nil {
			return nil, fmt.Errorf("couldn't decrypt %s: %w", path, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("%s holds a PEM block of type %q, not a private key", path, block.Type)
}

// openKey opens the key ref names (a pkcs11: URI or a key file); with ref
// empty, the key file at def, created on first start. Keys in tokens are
// closed by closeKeys.
func (s *Server) openKey(ref, def string) (crypto.Signer, error) {
	switch {
	case ref == "":
		return loadOrCreateKey(def, s.cfg.Password, s.state.Shared())
	case signer.IsPKCS11URI(ref):
		k, err := signer.LoadPKCS11(ref)
		if err != nil {
			return nil, err // names the key without its PIN
		}
		s.keyClosers = append(s.keyClosers, k)
		return k, nil
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("couldn't read key: %w", err)
	}
	return parseKeyFile(ref, b, s.cfg.Password)
}

// closeKeys releases the keys in tokens.
func (s *Server) closeKeys() error {
	var err error
	for _, c := range s.keyClosers {
		err = errors.Join(err, c.Close())
	}
	s.keyClosers = nil
	return err
}

// checkLogPublicKey records the log's public key as path of st on first
// start, and refuses a log key that differs from the recorded one.
func checkLogPublicKey(ctx context.Context, st state.Store, path string, pub crypto.PublicKey) error {
	pemBytes, err := signer.MarshalPublicKey(pub)
	if err != nil {
		return fmt.Errorf("log key: %w", err)
	}
	if _, err := st.Create(ctx, path, pemBytes); err != nil {
		return fmt.Errorf("couldn't record log public key: %w", err)
	}
	b, err := st.Get(ctx, path)
	if err != nil {
		return fmt.Errorf("couldn't read log public key: %w", err)
	}
	old, err := signer.ParsePublicKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if signer.KeyID(old) != signer.KeyID(pub) {
		return fmt.Errorf("the log key (ID %s) is not the key this log was created with (%s, ID %s); a log's key is its identity",
			signer.KeyID(pub), path, signer.KeyID(old))
	}
	return nil
}

// readLogPublicKey returns the log's public key: from DIR/keys/log.pub
// when recorded, else from the private key file DIR/keys/log.key.
func readLogPublicKey(dir string, password []byte) (crypto.PublicKey, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "keys", "log.pub")); err == nil {
		return signer.ParsePublicKey(b)
	}
	keyPath := filepath.Join(dir, "keys", "log.key")
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("couldn't read log key: %w", err)
	}
	k, err := parseKeyFile(keyPath, kb, password)
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

// loadOrCreateChain reads the TSA chain at path of st, or generates one for
// key (replicas starting together: the first one stored counts).
func loadOrCreateChain(ctx context.Context, st state.Store, path string, key crypto.Signer, now time.Time) ([]*x509.Certificate, error) {
	b, err := st.Get(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		leaf, root, _, err := tsa.GenerateChain(key, "custody timestamp authority", now)
		if err != nil {
			return nil, fmt.Errorf("couldn't make TSA certificates: %w", err)
		}
		var out []byte
		for _, c := range []*x509.Certificate{leaf, root} {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		if _, err := st.Create(ctx, path, out); err != nil {
			return nil, fmt.Errorf("couldn't store TSA chain: %w", err)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		b, err = st.Get(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read TSA chain: %w", err)
	}
	var chain []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("couldn't parse %s: %w", path, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", path)
	}
	return chain, nil
}

// writeFileAtomic durably writes b to path, creating its directory (0700).
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("couldn't create %s: %w", dir, err)
	}
	return fsutil.WriteFileDurable(path, b, mode)
}
