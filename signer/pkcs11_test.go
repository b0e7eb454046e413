package signer

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePKCS11URI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want PKCS11URI
	}{
		{"task example", "pkcs11:token=custody;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
			PKCS11URI{Token: "custody", Object: "release", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINValue: "1234"}},
		{"id bytes", "pkcs11:id=%01%ff%00", PKCS11URI{ID: []byte{1, 0xff, 0}}},
		{"slot-id", "pkcs11:slot-id=34304133;object=a", PKCS11URI{SlotID: 34304133, HasSlotID: true, Object: "a"}},
		{"pin-source", "pkcs11:object=a?pin-source=file:/run/pin", PKCS11URI{Object: "a", PINSource: "file:/run/pin"}},
		{"percent-decoding", "pkcs11:token=My%20Token;object=a%3Bb%2Fc;model=SoftHSM%20v2",
			PKCS11URI{Token: "My Token", Object: "a;b/c", Model: "SoftHSM v2"}},
		{"uppercase scheme", "PKCS11:object=a", PKCS11URI{Object: "a"}},
		{"empty path", "pkcs11:", PKCS11URI{}},
		{"empty query", "pkcs11:object=a?", PKCS11URI{Object: "a"}},
		{"library attrs", "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft;library-version=1.23;object=k",
			PKCS11URI{LibraryManufacturer: "Snake Oil, Inc.", LibraryDescription: "Soft", LibraryVersion: "1.23", Object: "k"}},
		{"vendor query ignored", "pkcs11:object=k?x-vendor=1&pin-value=1", PKCS11URI{Object: "k", PINValue: "1"}},
		{"query chars", "pkcs11:object=k?pin-value=a/b?c|d", PKCS11URI{Object: "k", PINValue: "a/b?c|d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePKCS11URI(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want.String() || !bytes.Equal(got.ID, tc.want.ID) || got.PINValue != tc.want.PINValue {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			// String round-trips everything but the PIN value.
			again, err := ParsePKCS11URI(got.String())
			if err != nil {
				t.Fatalf("String %q does not parse: %v", got, err)
			}
			if again.String() != got.String() {
				t.Errorf("String not stable: %q then %q", got, again)
			}
		})
	}
}

func TestParsePKCS11URIRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"file.key", "does not start"},
		{"pkcs11:objet=a", `unknown path attribute "objet"`},
		{"pkcs11:x-vendor=a", `unknown path attribute "x-vendor"`},
		{"pkcs11:object=a?foo=b", `unknown query attribute "foo"`},
		{"pkcs11:object=a;object=b", "appears twice"},
		{"pkcs11:object=a?pin-value=1&pin-value=2", "appears twice"},
		{"pkcs11:object=a?pin-value=1&pin-source=file:/p", "must not both"},
		{"pkcs11:object=a;", "empty attribute"},
		{"pkcs11:object", `has no "="`},
		{"pkcs11:=a", "no name"},
		{"pkcs11:object=", "empty value"},
		{"pkcs11:serial=", "empty value"},
		{"pkcs11:object=a%2", "percent-encoding"},
		{"pkcs11:object=a%zz", "percent-encoding"},
		{"pkcs11:object=a b", "must be percent-encoded"},
		{"pkcs11:object=a/b", "must be percent-encoded"},
		{"pkcs11:object=%ff", "not UTF-8"},
		{"pkcs11:slot-id=-1", "not a decimal"},
		{"pkcs11:slot-id=99999999999999999999999", "out of range"},
		{"pkcs11:library-version=1.", "not M or M.N"},
		{"pkcs11:type=cert", "names no key pair"},
		{"pkcs11:type=bogus", "is not one of"},
		{"pkcs11:object=a?module-name=softhsm2", "module-name is not supported"},
		{"pkcs11:object=a?module-path=lib.so", "not an absolute path"},
		{"pkcs11:object=a?pin-value=%zz", `"pin-value" is malformed (not shown)`},
		{"pkcs11:object=a?pin-value=a;b", `"pin-value" is malformed (not shown)`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParsePKCS11URI(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestRedactKeyRef(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"pkcs11:token=custody;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=s3cret": "pkcs11:token=custody;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=REDACTED",
		"pkcs11:token=custody;bogus=1?pin-value=s3cret":                                                    "pkcs11:token=custody;bogus=1?…",
		"release.key":             "release.key",
		"awskms:///alias/release": "awskms:///alias/release",
	} {
		if got := RedactKeyRef(in); got != want {
			t.Errorf("RedactKeyRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPKCS11PIN(t *testing.T) {
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte("4321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(PKCS11PINEnv, "")
	for _, tc := range []struct{ uri, want, wantErr string }{
		{"pkcs11:object=a?pin-value=1234", "1234", ""},
		{"pkcs11:object=a?pin-source=file:" + pinFile, "4321", ""},
		{"pkcs11:object=a?pin-source=file://" + pinFile, "4321", ""},
		{"pkcs11:object=a?pin-source=" + pinFile, "4321", ""},
		{"pkcs11:object=a?pin-source=file://elsewhere" + pinFile, "", "another host"},
		{"pkcs11:object=a?pin-source=https://example.com/pin", "", "only file:"},
		{"pkcs11:object=a?pin-source=file:relative", "", "not an absolute path"},
		{"pkcs11:object=a?pin-source=" + filepath.Join(dir, "nope"), "", "couldn't read PIN"},
		{"pkcs11:object=a", "", "set CUSTODY_PKCS11_PIN"},
	} {
		u, err := ParsePKCS11URI(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		got, err := u.pin()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %v, want error containing %q", tc.uri, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.uri, got, err, tc.want)
		}
	}
	t.Setenv(PKCS11PINEnv, "5555")
	u, _ := ParsePKCS11URI("pkcs11:object=a")
	if got, err := u.pin(); err != nil || got != "5555" {
		t.Errorf("from env: got %q, %v", got, err)
	}
}

func FuzzParsePKCS11URI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=custody;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
		"pkcs11:id=%01;slot-id=3?pin-source=file:/run/pin",
		// RFC 7512, section 7
		"pkcs11:",
		"pkcs11:object=my-pubkey;type=public",
		"pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
		"pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
		"pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
		"pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
		"pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
		"pkcs11:slot-description=Sun%20Metaslot",
		"pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
		"pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
		"pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
		"pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParsePKCS11URI(s)
		if err != nil {
			if u != nil {
				t.Fatal("non-nil URI with an error")
			}
			if pin := pinValueOf(s); len(pin) > 3 && strings.Count(s, pin) == 1 && strings.Contains(err.Error(), pin) {
				t.Fatalf("error %q shows the PIN %q", err, pin)
			}
			return
		}
		str := u.String()
		if v := pinValueOf(str); v != "" && v != "REDACTED" {
			t.Fatalf("String %q shows the PIN", str)
		}
		again, err := ParsePKCS11URI(str)
		if err != nil {
			t.Fatalf("String %q of %q does not parse: %v", str, s, err)
		}
		if again.String() != str || !bytes.Equal(again.ID, u.ID) || again.Object != u.Object || again.Token != u.Token {
			t.Fatalf("round trip of %q: %q then %q", s, str, again.String())
		}
	})
}

// pinValueOf returns the raw pin-value of a URI-like string, if any.
func pinValueOf(s string) string {
	_, q, ok := strings.Cut(s, "?")
	if !ok {
		return ""
	}
	for _, a := range strings.Split(q, "&") {
		if v, ok := strings.CutPrefix(a, "pin-value="); ok {
			return v
		}
	}
	return ""
}
