package signer

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/custody-dev/custody/internal/fsutil"
)

// ErrEmptyPassword is returned by WriteKeyPair for an empty password: a key
// "encrypted" with nothing is as good as a key in the clear.
var ErrEmptyPassword = errors.New("empty key password: the key would be encrypted with nothing")

// ErrUnsupportedKeyRef is returned (wrapped) by Load for key references of a
// scheme custody does not handle yet; the message names the scheme.
var ErrUnsupportedKeyRef = errors.New("unsupported key reference")

// WriteKeyPair generates a key of algorithm alg and writes it encrypted with
// password to prefix+".key" (mode 0600) and its public key to prefix+".pub"
// (mode 0644). Unless force is set it never replaces an existing file: if
// either exists it writes neither and returns an error wrapping
// fs.ErrExist. With force, each file is written to a temporary file in the
// same directory and renamed over the old one (the key first; if replacing
// the public key then fails, the returned error says so and the pair on disk
// does not match).
// An empty password is refused with ErrEmptyPassword before anything is
// generated or written.
func WriteKeyPair(prefix string, alg Algorithm, password []byte, force bool) (keyPath, pubPath string, err error) {
	if prefix == "" {
		return "", "", errors.New("empty key file prefix")
	}
	if len(password) == 0 {
		return "", "", ErrEmptyPassword
	}
	keyPath, pubPath = prefix+".key", prefix+".pub"
	if !force {
		// Fail before the slow key derivation; O_EXCL below still decides.
		for _, p := range []string{keyPath, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", "", fmt.Errorf("won't overwrite %s: %w", p, fs.ErrExist)
			}
		}
	}
	priv, err := Generate(alg)
	if err != nil {
		return "", "", err
	}
	keyPEM, err := EncryptPrivateKey(priv, password)
	if err != nil {
		return "", "", err
	}
	pubPEM, err := MarshalPublicKey(priv.Public())
	if err != nil {
		return "", "", err
	}
	if err := writePair(keyPath, pubPath, keyPEM, pubPEM, force); err != nil {
		return "", "", err
	}
	return keyPath, pubPath, nil
}

// writePair writes a private key file (0600) and its public key file (0644).
func writePair(keyPath, pubPath string, keyPEM, pubPEM []byte, force bool) error {
	if force {
		if err := fsutil.WriteFileDurable(keyPath, keyPEM, 0o600); err != nil {
			return err
		}
		return fsutil.WriteFileDurable(pubPath, pubPEM, 0o644)
	}
	if err := createFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := createFile(pubPath, pubPEM, 0o644); err != nil {
		// Do not leave a private key without its public half behind.
		os.Remove(keyPath)
		return err
	}
	return nil
}

// createFile writes b to a new file at path, failing if path exists (even
// as a dangling symlink).
func createFile(path string, b []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("won't overwrite %s: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("couldn't create %s: %w", path, err)
	}
	if err := writeAndClose(f, b, perm); err != nil {
		os.Remove(path)
		return fmt.Errorf("couldn't write %s: %w", path, err)
	}
	return nil
}

// writeAndClose sets f's mode to perm (independent of the umask), writes b,
// syncs and closes f.
func writeAndClose(f *os.File, b []byte, perm fs.FileMode) error {
	err := f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Load opens the signing key that ref names:
//
//   - a PKCS#11 URI ("pkcs11:…", RFC 7512): the key pair in the token, as
//     LoadPKCS11 opens it (password is not used; the PIN comes from the URI
//     or $CUSTODY_PKCS11_PIN). The result is a *PKCS11Signer, which holds
//     the token until closed: call Close(s) when done with any signer Load
//     returns.
//   - a KMS reference ("awskms://", "gcpkms://", "azurekms://",
//     "hashivault://"): refused with an error wrapping ErrKMSUnsupported.
//   - otherwise the path of a key file in the Sigstore encrypted format (see
//     DecryptPrivateKey); password is called only once the file has been
//     read and looks like an encrypted key.
//
// Any other "scheme://" gives an error wrapping ErrUnsupportedKeyRef. A wrong
// password gives an error wrapping ErrWrongPassword, a wrong PIN one wrapping
// ErrWrongPIN. Errors show a PKCS#11 URI only as RedactKeyRef does.
func Load(ref string, password func() ([]byte, error)) (crypto.Signer, error) {
	if ref == "" {
		return nil, errors.New("no signing key given")
	}
	if IsPKCS11URI(ref) {
		s, err := LoadPKCS11(ref)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	}
	if IsKMSRef(ref) {
		return nil, refuseKMS(ref)
	}
	if scheme, _, ok := strings.Cut(ref, "://"); ok && !strings.ContainsAny(scheme, `/\.`) {
		return nil, fmt.Errorf("%w: %q keys are not supported", ErrUnsupportedKeyRef, scheme)
	}
	b, err := readKeyFile(ref)
	if err != nil {
		return nil, err
	}
	if _, err := decodeOnePEM(b); err != nil {
		return nil, fmt.Errorf("couldn't read private key %s: %w", ref, err)
	}
	if password == nil {
		return nil, errors.New("no way to ask for the key's password")
	}
	pw, err := password()
	if err != nil {
		return nil, fmt.Errorf("couldn't get password for %s: %w", ref, err)
	}
	s, err := DecryptPrivateKey(b, pw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return s, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read key %s: %w", path, err)
	}
	if len(b) > maxKeyFileBytes {
		return nil, fmt.Errorf("key file %s is larger than %d bytes; is it a key?", path, maxKeyFileBytes)
	}
	return b, nil
}
