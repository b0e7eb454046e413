package jsonl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type rec struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

var errBad = errors.New("damaged")

func testFile(t *testing.T) File[rec] {
	return File[rec]{
		Path: filepath.Join(t.TempDir(), "sub", "log.jsonl"), Name: "test log", MaxBytes: 1 << 10, Corrupt: errBad,
		Check: func(r *rec) error {
			if r.Name == "" {
				return errors.New("no name")
			}
			return nil
		},
		ID: func(r *rec) int64 { return r.ID },
	}
}

func TestAppendRead(t *testing.T) {
	f := testFile(t)
	if rs, err := f.Read(); err != nil || rs != nil {
		t.Fatalf("missing file = %v, %v", rs, err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := f.Append(&rec{Name: n}, func(r *rec, id int64) { r.ID = id }); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := f.Read()
	if err != nil || len(rs) != 3 || rs[2].ID != 3 || rs[2].Name != "c" {
		t.Fatalf("read = %+v, %v", rs, err)
	}
	if fi, err := os.Stat(f.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v", fi.Mode(), err)
	}
}

func TestCorrupt(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"truncated", `{"id":1,"name":"a"}` + "\n" + `{"id":2,"na`, "line 2 is truncated"},
		{"not json", "garbage\n", "line 1 is not a record"},
		{"unknown field", `{"id":1,"name":"a","x":1}` + "\n", "line 1 is not a record"},
		{"fails check", `{"id":1}` + "\n", "line 1: no name"},
		{"wrong id", `{"id":2,"name":"a"}` + "\n", "line 1 has id 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFile(t)
			if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f.Path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := f.Read()
			if !errors.Is(err, errBad) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("read = %v, want %q", err, tc.want)
			}
			// Nothing is appended after damage.
			if err := f.Append(&rec{Name: "z"}, func(r *rec, id int64) { r.ID = id }); !errors.Is(err, errBad) {
				t.Fatalf("append = %v, want the damage reported", err)
			}
			if b, _ := os.ReadFile(f.Path); string(b) != tc.content {
				t.Fatalf("file changed to %q", b)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	f := testFile(t)
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Path, []byte(strings.Repeat("x", 2<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(); err == nil || !strings.Contains(err.Error(), "is over 1024 bytes") {
		t.Fatalf("read = %v", err)
	}
}

func TestAppendAll(t *testing.T) {
	f := testFile(t)
	stamp := func(r *rec, id int64) { r.ID = id }
	if err := f.Append(&rec{Name: "a"}, stamp); err != nil {
		t.Fatal(err)
	}
	if err := f.AppendAll([]*rec{{Name: "b"}, {Name: "c"}, {Name: "d"}}, stamp); err != nil {
		t.Fatal(err)
	}
	if err := f.AppendAll(nil, stamp); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	rs, err := f.Read()
	if err != nil || len(rs) != 4 {
		t.Fatalf("read = %+v, %v; want 4 records", rs, err)
	}
	for i, r := range rs {
		if r.ID != int64(i+1) || r.Name != string(rune('a'+i)) {
			t.Errorf("record %d = %+v", i, r)
		}
	}
}
