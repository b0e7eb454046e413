package digest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	helloSHA256 = "c8d8123a262bd94feca2723fe165758f7532781ee36b238d0d8b8d6dfc2cbeaa"
	helloSHA512 = "89492035c9b02654c9397c74156f773e2c622cac2053f4347b14ed4a9e437b492ac2285c3c6592bac21d682b629f32eac8e639fee7514da1f7e4bdfcad1446d9"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Digest
		wantErr string
	}{
		{"sha256", "sha256:" + helloSHA256, Digest{Alg: SHA256, Hex: helloSHA256}, ""},
		{"sha512", "sha512:" + helloSHA512, Digest{Alg: SHA512, Hex: helloSHA512}, ""},
		{"no colon", helloSHA256, Digest{}, "want ALG:HEX"},
		{"unknown alg", "md5:d41d8cd98f00b204e9800998ecf8427e", Digest{}, "unsupported algorithm"},
		{"upper alg", "SHA256:" + helloSHA256, Digest{}, "unsupported algorithm"},
		{"short", "sha256:" + helloSHA256[:63], Digest{}, "64 characters"},
		{"long", "sha256:" + helloSHA256 + "0", Digest{}, "64 characters"},
		{"sha512 length for sha256", "sha256:" + helloSHA512, Digest{}, "64 characters"},
		{"uppercase hex", "sha256:" + strings.ToUpper(helloSHA256), Digest{}, "lowercase"},
		{"non hex", "sha256:" + strings.Repeat("g", 64), Digest{}, "lowercase"},
		{"empty", "", Digest{}, "want ALG:HEX"},
		{"second colon", "sha256:" + helloSHA256[:63] + ":", Digest{}, "lowercase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"sha256:" + helloSHA256, "sha512:" + helloSHA512, "sha256:", ":", "", "sha256:zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		if d.String() != s {
			t.Fatalf("Parse(%q).String() = %q: not a round trip", s, d.String())
		}
		if _, err := hex.DecodeString(d.Hex); err != nil {
			t.Fatalf("Parse(%q) accepted bad hex: %v", s, err)
		}
	})
}

// writeRandom writes n pseudo-random bytes to a temp file and returns its
// path and expected sha256.
func writeRandom(t *testing.T, n int, seed uint64) (string, string) {
	t.Helper()
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	p := filepath.Join(t.TempDir(), "random.bin")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return p, hex.EncodeToString(sum[:])
}

func TestFile(t *testing.T) {
	big, bigSum := writeRandom(t, 3*bufSize+12345, 1)
	exact, exactSum := writeRandom(t, bufSize, 2)
	tests := []struct {
		name     string
		path     string
		wantHex  string
		wantSize int64
		wantErr  bool
	}{
		{"empty", "testdata/empty", emptySHA256, 0, false},
		{"small", "testdata/hello.txt", helloSHA256, 15, false},
		{"several buffers", big, bigSum, 3*bufSize + 12345, false},
		{"exactly one buffer", exact, exactSum, bufSize, false},
		{"missing", "testdata/missing", "", 0, true},
		{"directory", "testdata", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := File(tt.path)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("File(%s) = %v, want error", tt.path, d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Digest{Alg: SHA256, Hex: tt.wantHex, Size: tt.wantSize}
			if d != want {
				t.Fatalf("File(%s) = %+v, want %+v", tt.path, d, want)
			}
		})
	}
}

func TestFileAlgs(t *testing.T) {
	tests := []struct {
		name    string
		algs    []string
		want    map[string]string
		wantErr bool
	}{
		{"default", nil, map[string]string{SHA256: helloSHA256}, false},
		{"both", []string{SHA256, SHA512}, map[string]string{SHA256: helloSHA256, SHA512: helloSHA512}, false},
		{"sha512", []string{SHA512}, map[string]string{SHA512: helloSHA512}, false},
		{"unsupported", []string{"md5"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FileAlgs("testdata/hello.txt", tt.algs...)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("%s = %s, want %s", k, got[k], v)
				}
			}
		})
	}
}

func TestFiles(t *testing.T) {
	big, bigSum := writeRandom(t, 2*bufSize+7, 3)
	paths := []string{"testdata/hello.txt", big, "testdata/empty", "testdata/hello.txt", big}
	want := []string{helloSHA256, bigSum, emptySHA256, helloSHA256, bigSum}
	for _, workers := range []int{0, 1, 2, 16} {
		t.Run("workers="+string(rune('0'+workers%10)), func(t *testing.T) {
			got, err := Files(context.Background(), paths, workers)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d digests, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Hex != want[i] || got[i].Alg != SHA256 {
					t.Errorf("digest %d (%s) = %v, want sha256:%s", i, paths[i], got[i], want[i])
				}
			}
		})
	}
	t.Run("empty list", func(t *testing.T) {
		got, err := Files(context.Background(), nil, 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("Files(nil) = %v, %v", got, err)
		}
	})
	t.Run("error", func(t *testing.T) {
		_, err := Files(context.Background(), []string{"testdata/hello.txt", "testdata/missing", big}, 2)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v, want not-exist", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Files(ctx, []string{big, big}, 1)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestFileMatchesStdlibOnPrefixes(t *testing.T) {
	// Lengths around the buffer boundary exercise partial final reads.
	b := bytes.Repeat([]byte("custody"), bufSize/7+3)
	dir := t.TempDir()
	for _, n := range []int{1, bufSize - 1, bufSize, bufSize + 1} {
		t.Run(filepath.Base(dir)+"/"+hex.EncodeToString([]byte{byte(n >> 16), byte(n >> 8), byte(n)}), func(t *testing.T) {
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, b[:n], 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := File(p)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b[:n])
			if d.Hex != hex.EncodeToString(sum[:]) || d.Size != int64(n) {
				t.Fatalf("File = %v size %d, want %x size %d", d, d.Size, sum, n)
			}
		})
	}
}
