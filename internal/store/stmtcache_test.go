package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &s.stmts

	selectN := func(i int) string { return fmt.Sprintf("SELECT %d + ?", i) }
	read := func(stmt string, arg, want int) error {
		rows, err := s.query(ctx, stmt, arg)
		if err != nil {
			return err
		}
		defer rows.Close()
		var got int
		if !rows.Next() {
			return fmt.Errorf("%s: no row (%v)", stmt, rows.Err())
		}
		if err := rows.Scan(&got); err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s with %d = %d, want %d", stmt, arg, got, want)
		}
		return rows.Close()
	}

	t.Run("concurrent", func(t *testing.T) {
		// 16 goroutines ask for the same 8 shapes at once.
		var wg sync.WaitGroup
		errs := make(chan error, 16*50)
		for g := range 16 {
			wg.Go(func() {
				for i := range 50 {
					shape := (g + i) % 8
					if err := read(selectN(shape), i, shape+i); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := c.len(); n != 8 {
			t.Errorf("%d statements cached, want 8", n)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		for i := range maxCachedStmts + 50 {
			if err := read(selectN(i), 1, i+1); err != nil {
				t.Fatal(err)
			}
		}
		if n := c.len(); n != maxCachedStmts {
			t.Errorf("%d statements cached, want the bound %d", n, maxCachedStmts)
		}
		// Shapes beyond the bound still run, unprepared, and a cached
		// shape still answers.
		if err := read(selectN(maxCachedStmts+10), 2, maxCachedStmts+12); err != nil {
			t.Error(err)
		}
		if err := read(selectN(3), 2, 5); err != nil {
			t.Error(err)
		}
	})

	t.Run("bad statement", func(t *testing.T) {
		before := c.len()
		if _, err := s.query(ctx, "SELECT FROM nowhere ?", 1); err == nil {
			t.Error("query of a malformed statement succeeded")
		}
		if n := c.len(); n != before {
			t.Errorf("%d statements cached after a failed prepare, want %d", n, before)
		}
	})

	t.Run("close", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if n := c.len(); n != 0 {
			t.Errorf("%d statements cached after Close, want 0", n)
		}
		if err := read(selectN(3), 2, 5); err == nil {
			t.Error("query after Close succeeded")
		}
		if _, err := s.Search(ctx, Query{}); err == nil {
			t.Error("Search after Close succeeded")
		}
	})
}

// TestSearchStmtShapes checks that searches reuse a few prepared statements:
// pages of any size read their subjects through power-of-two IN lists.
func TestSearchStmtShapes(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 40 {
		b := fmt.Appendf(nil, `{"n":%d}`, i)
		e := &Evidence{Bundle: b, Subjects: []Subject{{Name: fmt.Sprint("a", i), Digests: map[string]string{
			"sha256": fmt.Sprintf("%064x", i)}}}, LogIndex: -1}
		if _, _, err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for limit := 1; limit <= 40; limit++ {
		res, err := s.Search(ctx, Query{Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != limit {
			t.Fatalf("Search(Limit: %d) returned %d records", limit, len(res))
		}
		for i, e := range res {
			if len(e.Subjects) != 1 || e.Subjects[0].Name != fmt.Sprint("a", i) {
				t.Fatalf("Search(Limit: %d): record %d has subjects %+v", limit, i, e.Subjects)
			}
		}
	}
	// One search shape plus IN lists of 1, 2, 4, ..., 64.
	if n := s.stmts.len(); n != 1+7 {
		t.Errorf("%d statements cached after searches with 40 page sizes, want 8", n)
	}
}
