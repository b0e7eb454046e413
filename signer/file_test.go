package signer

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestWriteKeyPair(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	pw := []byte("pw")
	keyPath, pubPath, err := WriteKeyPair(prefix, Ed25519, pw, false)
	if err != nil {
		t.Fatal(err)
	}
	if keyPath != prefix+".key" || pubPath != prefix+".pub" {
		t.Errorf("wrote %s, %s", keyPath, pubPath)
	}
	if m := mode(t, keyPath); m != 0o600 {
		t.Errorf("key mode %v, want 0600", m)
	}
	if m := mode(t, pubPath); m != 0o644 {
		t.Errorf("pub mode %v, want 0644", m)
	}
	oldKey, _ := os.ReadFile(keyPath)
	oldPub, _ := os.ReadFile(pubPath)

	var asked int
	s, err := Load(keyPath, func() ([]byte, error) { asked++; return pw, nil })
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(oldPub)
	if err != nil || !equalPublic(pub, s.Public()) || asked != 1 {
		t.Fatalf("Load: key does not match .pub (%v) or password asked %d times", err, asked)
	}

	t.Run("no overwrite", func(t *testing.T) {
		_, _, err := WriteKeyPair(prefix, ECDSAP256, pw, false)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("got %v, want fs.ErrExist", err)
		}
		if k, _ := os.ReadFile(keyPath); !bytes.Equal(k, oldKey) {
			t.Error("existing key was changed")
		}
		if p, _ := os.ReadFile(pubPath); !bytes.Equal(p, oldPub) {
			t.Error("existing pub was changed")
		}
	})
	t.Run("only pub exists", func(t *testing.T) {
		p := filepath.Join(dir, "half")
		if err := os.WriteFile(p+".pub", []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := WriteKeyPair(p, ECDSAP256, pw, false); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("got %v, want fs.ErrExist", err)
		}
		if _, err := os.Lstat(p + ".key"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a private key was left behind: %v", err)
		}
	})
	t.Run("dangling symlink", func(t *testing.T) {
		p := filepath.Join(dir, "link")
		target := filepath.Join(dir, "elsewhere")
		if err := os.Symlink(target, p+".key"); err != nil {
			t.Skip(err)
		}
		if _, _, err := WriteKeyPair(p, ECDSAP256, pw, false); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("got %v, want fs.ErrExist", err)
		}
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Error("wrote through a symlink")
		}
	})
	t.Run("force", func(t *testing.T) {
		if err := os.Chmod(keyPath, 0o644); err != nil { // a loosened old file
			t.Fatal(err)
		}
		if _, _, err := WriteKeyPair(prefix, ECDSAP256, pw, true); err != nil {
			t.Fatal(err)
		}
		if k, _ := os.ReadFile(keyPath); bytes.Equal(k, oldKey) {
			t.Error("key was not replaced")
		}
		if m := mode(t, keyPath); m != 0o600 {
			t.Errorf("replaced key mode %v, want 0600", m)
		}
		if m := mode(t, pubPath); m != 0o644 {
			t.Errorf("replaced pub mode %v, want 0644", m)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("temporary file %s left behind", e.Name())
			}
		}
	})
	t.Run("bad algorithm", func(t *testing.T) {
		if _, _, err := WriteKeyPair(filepath.Join(dir, "bad"), "rsa", pw, false); err == nil {
			t.Error("WriteKeyPair accepted algorithm rsa")
		}
	})
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "notpem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cosignKey := filepath.Join("testdata", "cosign-ecdsa-p256.key")
	pw := readTestdata(t, "cosign.password")
	errAsk := errors.New("no tty")
	for _, tc := range []struct {
		name        string
		ref         string
		pw          []byte
		askErr      error
		wantAsked   bool
		wantIs      error
		wantMessage string
	}{
		{"pkcs11 module missing", "pkcs11:token=custody;object=release?module-path=/nonexistent/p11.so&pin-value=1", nil, nil, false, fs.ErrNotExist, "/nonexistent/p11.so"},
		{"pkcs11 malformed", "pkcs11:token=custody;objet=release", nil, nil, false, nil, `unknown path attribute "objet"`},
		{"awskms", "awskms:///alias/release", nil, nil, false, ErrKMSUnsupported, "awskms: KMS keys are not supported"},
		{"other scheme", "k8s://ns/secret", nil, nil, false, ErrUnsupportedKeyRef, `"k8s"`},
		{"missing file", filepath.Join(dir, "nope.key"), nil, nil, false, fs.ErrNotExist, "couldn't open key"},
		{"not PEM", notPEM, nil, nil, false, nil, "no PEM block"},
		{"empty ref", "", nil, nil, false, nil, "no signing key"},
		{"password error", cosignKey, nil, errAsk, true, errAsk, "couldn't get password"},
		{"wrong password", cosignKey, []byte("nope"), nil, true, ErrWrongPassword, cosignKey},
		{"cosign key", cosignKey, pw, nil, true, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := false
			s, err := Load(tc.ref, func() ([]byte, error) { asked = true; return tc.pw, tc.askErr })
			if asked != tc.wantAsked {
				t.Errorf("password asked: %v, want %v", asked, tc.wantAsked)
			}
			if tc.wantMessage == "" {
				if err != nil || s == nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantMessage) {
				t.Errorf("got %v, want error containing %q", err, tc.wantMessage)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("got %v, want errors.Is %v", err, tc.wantIs)
			}
		})
	}
}

// TestWritePair covers the race WriteKeyPair's early check cannot: a file
// appearing after the check.
func TestWritePair(t *testing.T) {
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "a.key"), filepath.Join(dir, "a.pub")
	if err := os.WriteFile(pub, []byte("theirs"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writePair(key, pub, []byte("k"), []byte("p"), false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("got %v, want fs.ErrExist", err)
	}
	if _, err := os.Lstat(key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("private key left behind: %v", err)
	}
	if b, _ := os.ReadFile(pub); string(b) != "theirs" {
		t.Error("existing pub overwritten")
	}
	if err := writePair(key, pub, []byte("k"), []byte("p"), true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(pub); string(b) != "p" {
		t.Error("force did not replace pub")
	}
	if m := mode(t, key); m != 0o600 {
		t.Errorf("key mode %v, want 0600", m)
	}
}

// An empty password is refused: the output used to say "encrypted" for a
// key encrypted with nothing (issue 18 item 9).
func TestWriteKeyPairEmptyPassword(t *testing.T) {
	dir := t.TempDir()
	for _, pw := range [][]byte{nil, {}} {
		if _, _, err := WriteKeyPair(filepath.Join(dir, "k"), ECDSAP256, pw, false); !errors.Is(err, ErrEmptyPassword) {
			t.Fatalf("WriteKeyPair with password %q = %v, want ErrEmptyPassword", pw, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files written for a refused password: %v", entries)
	}
}
