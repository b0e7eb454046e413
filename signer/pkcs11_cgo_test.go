//go:build cgo

package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ThalesGroup/crypto11"
	"github.com/sigstore/sigstore-go/pkg/bundle"
)

// softHSM returns a URI prefix for the test token that scripts/softhsm
// initializes, and its PIN; it skips the test when SOFTHSM2_CONF is unset.
func softHSM(t *testing.T) (module, pin string) {
	t.Helper()
	if os.Getenv("SOFTHSM2_CONF") == "" {
		t.Skip("SOFTHSM2_CONF not set; run eval \"$(scripts/softhsm)\" first")
	}
	module = os.Getenv("CUSTODY_TEST_PKCS11_MODULE")
	if module == "" {
		module = DefaultPKCS11Module
	}
	pin = os.Getenv("CUSTODY_TEST_PKCS11_PIN")
	if pin == "" {
		pin = "1234"
	}
	return module, pin
}

// uniqueLabel is a label no earlier run used (the token persists).
func uniqueLabel(t *testing.T) string {
	b := make([]byte, 6)
	rand.Read(b)
	return strings.ReplaceAll(t.Name(), "/", "-") + "-" + hex.EncodeToString(b)
}

func openTokens() int {
	tokensMu.Lock()
	defer tokensMu.Unlock()
	return len(tokens)
}

func TestPKCS11SoftHSM(t *testing.T) {
	module, pin := softHSM(t)
	t.Setenv(PKCS11PINEnv, "")
	label := uniqueLabel(t)
	base := "pkcs11:token=custody;object=" + label + "?module-path=" + module
	withPIN := base + "&pin-value=" + pin

	dir := t.TempDir()
	pubPath, keyURI, err := WritePKCS11KeyPair(withPIN, filepath.Join(dir, "release"), ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(keyURI, "object="+label+";id=%") || strings.Contains(keyURI, "pin-value="+pin) {
		t.Errorf("key URI %q", keyURI)
	}
	if fi, err := os.Stat(pubPath); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("public key file: %v %v", fi, err)
	}
	pubFile, err := ParsePublicKey(readFile(t, pubPath))
	if err != nil {
		t.Fatal(err)
	}
	if ec, ok := pubFile.(*ecdsa.PublicKey); !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("public key is %T, want ECDSA P-256", pubFile)
	}
	if n := openTokens(); n != 0 {
		t.Errorf("%d token contexts left open after WritePKCS11KeyPair", n)
	}

	t.Run("load by label", func(t *testing.T) {
		s, err := Load(withPIN, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.(*PKCS11Signer).Close()
		if !equalPublic(s.Public(), pubFile) {
			t.Fatal("token key differs from NAME.pub")
		}
		assertNonExtractable(t, s.(*PKCS11Signer))
		// A second signer shares the context; closing one keeps the other.
		s2, err := LoadPKCS11(withPIN)
		if err != nil {
			t.Fatal(err)
		}
		if n := openTokens(); n != 1 {
			t.Errorf("%d token contexts, want 1 shared", n)
		}
		s2.Close()
		s2.Close() // idempotent
		if _, err := s2.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); err == nil {
			t.Error("closed signer signed")
		}
		b, err := SignStatement(context.Background(), s, testStatement())
		if err != nil {
			t.Fatal(err)
		}
		var bb bundle.Bundle
		if err := bb.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		if err := verifyBundle(trustedKey(t, pubFile, crypto.SHA256), &bb); err != nil {
			t.Fatalf("sigstore-go: %v", err)
		}
	})
	if n := openTokens(); n != 0 {
		t.Errorf("%d token contexts left open", n)
	}

	t.Run("load by id and slot-id, PIN from env", func(t *testing.T) {
		g, err := LoadPKCS11(withPIN)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := ParsePKCS11URI(g.URI())
		g.Close()
		if len(u.ID) == 0 {
			t.Fatal("URI of a loaded key has no id")
		}
		tokensMu.Lock()
		slot, _, err := findSlot(module, &PKCS11URI{Token: "custody"})
		tokensMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv(PKCS11PINEnv, pin)
		ref := "pkcs11:slot-id=" + strconv.FormatUint(uint64(slot), 10) + ";id=" + pctEncode(string(u.ID), true) + "?module-path=" + module
		s, err := LoadPKCS11(ref)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !equalPublic(s.Public(), pubFile) {
			t.Fatal("key by id differs")
		}
		_, err = LoadPKCS11("pkcs11:slot-id=" + strconv.FormatUint(uint64(slot), 10) + ";token=other;id=%01?module-path=" + module)
		if err == nil || !strings.Contains(err.Error(), "no token matches") {
			t.Errorf("slot-id with another token label: %v", err)
		}
	})

	t.Run("pin-source", func(t *testing.T) {
		pinFile := filepath.Join(t.TempDir(), "pin")
		os.WriteFile(pinFile, []byte(pin+"\n"), 0o600)
		s, err := LoadPKCS11(base + "&pin-source=file:" + pinFile)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})

	t.Run("wrong PIN", func(t *testing.T) {
		wrong := "98765-wrong"
		// Nobody logged in: the token refuses it.
		_, err := LoadPKCS11(base + "&pin-value=" + wrong)
		if !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("got %v, want ErrWrongPIN", err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Fatalf("error shows the PIN: %v", err)
		}
		// Logged in already (PKCS#11 login is per application): still refused.
		s, err := LoadPKCS11(withPIN)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := LoadPKCS11(base + "&pin-value=" + wrong); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("with the token logged in: got %v, want ErrWrongPIN", err)
		}
	})

	t.Run("missing object", func(t *testing.T) {
		_, err := LoadPKCS11("pkcs11:token=custody;object=no-such-key?module-path=" + module + "&pin-value=" + pin)
		if !errors.Is(err, ErrKeyNotFound) || !strings.Contains(err.Error(), "object=no-such-key") {
			t.Fatalf("got %v, want ErrKeyNotFound naming the object", err)
		}
	})

	t.Run("missing token", func(t *testing.T) {
		_, err := LoadPKCS11("pkcs11:token=nope;object=a?module-path=" + module + "&pin-value=" + pin)
		if err == nil || !strings.Contains(err.Error(), `no token matches`) || !strings.Contains(err.Error(), `"custody"`) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("no object or id", func(t *testing.T) {
		if _, err := LoadPKCS11("pkcs11:token=custody?pin-value=" + pin); err == nil || !strings.Contains(err.Error(), "names no key") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("generate refuses existing", func(t *testing.T) {
		_, err := GeneratePKCS11(withPIN, ECDSAP256)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("same label: got %v, want fs.ErrExist", err)
		}
		s, _ := LoadPKCS11(withPIN)
		u, _ := ParsePKCS11URI(s.URI())
		s.Close()
		_, err = GeneratePKCS11("pkcs11:token=custody;object=other-"+label+";id="+pctEncode(string(u.ID), true)+"?pin-value="+pin+"&module-path="+module, ECDSAP256)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("same id: got %v, want fs.ErrExist", err)
		}
		// NAME.pub exists: refused before the token is touched.
		if _, _, err := WritePKCS11KeyPair(base+"-2&pin-value="+pin, filepath.Join(dir, "release"), ECDSAP256); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("existing pub: got %v", err)
		}
		if _, err := LoadPKCS11("pkcs11:token=custody;object=" + label + "-2?pin-value=" + pin + "&module-path=" + module); !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("key created although NAME.pub existed: %v", err)
		}
	})

	t.Run("ed25519 refused", func(t *testing.T) {
		_, err := GeneratePKCS11(base+"-ed&pin-value="+pin, Ed25519)
		if !errors.Is(err, ErrUnsupportedKey) || !strings.Contains(err.Error(), "Ed25519") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestPKCS11Concurrent signs from many goroutines with one signer, as
// custody build does, and checks every signature.
func TestPKCS11Concurrent(t *testing.T) {
	module, pin := softHSM(t)
	uri := "pkcs11:token=custody;object=" + uniqueLabel(t) + "?module-path=" + module + "&pin-value=" + pin
	s, err := GeneratePKCS11(uri, ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tm := trustedKey(t, s.Public(), crypto.SHA256)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := SignStatement(context.Background(), s, testStatement())
			if err != nil {
				errs <- err
				return
			}
			var bb bundle.Bundle
			if err := bb.UnmarshalJSON(b); err != nil {
				errs <- err
				return
			}
			if err := verifyBundle(tm, &bb); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// assertNonExtractable checks that the private key is sensitive and not
// extractable: it cannot leave the token.
func assertNonExtractable(t *testing.T, s *PKCS11Signer) {
	t.Helper()
	tokensMu.Lock()
	var ctx *crypto11.Context
	for _, tc := range tokens {
		ctx = tc.ctx
	}
	tokensMu.Unlock()
	attrs, err := ctx.GetAttributes(s.key, []crypto11.AttributeType{crypto11.CkaSensitive, crypto11.CkaExtractable})
	if err != nil {
		t.Fatal(err)
	}
	if v := attrs[crypto11.CkaSensitive].Value; len(v) != 1 || v[0] != 1 {
		t.Errorf("CKA_SENSITIVE = %v, want true", v)
	}
	if v := attrs[crypto11.CkaExtractable].Value; len(v) != 1 || v[0] != 0 {
		t.Errorf("CKA_EXTRACTABLE = %v, want false", v)
	}
}
