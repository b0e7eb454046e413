package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(string, []byte, os.FileMode) error
	}{
		{"atomic", WriteFileAtomic},
		{"durable", WriteFileDurable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := tc.write(p, []byte("new"), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil || string(b) != "new" {
				t.Fatalf("read %q, %v", b, err)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, %v", fi.Mode(), err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("temporary files left: %v", ents)
			}
			if err := tc.write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
				t.Fatal("write into a missing directory succeeded")
			}
		})
	}
}

func TestCreateFileDurable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	created, err := CreateFileDurable(p, []byte("first"), 0o640)
	if err != nil || !created {
		t.Fatalf("first create: %v, %v", created, err)
	}
	created, err = CreateFileDurable(p, []byte("second"), 0o640)
	if err != nil || created {
		t.Fatalf("second create: %v, %v (want false, nil)", created, err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "first" {
		t.Fatalf("read %q, %v; want the first content kept", b, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if _, err := CreateFileDurable(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("create in a missing directory succeeded")
	}
}
