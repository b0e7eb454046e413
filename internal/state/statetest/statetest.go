// Package statetest is the conformance test every state.Store passes.
package statetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"

	"github.com/custody-dev/custody/internal/state"
)

// Run checks st: documents, listing, versions, edits that never lose an
// update, and locks that exclude each other.
func Run(t *testing.T, st state.Store) {
	ctx := context.Background()
	if _, err := st.Get(ctx, "journal/a/1.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of nothing: %v, want fs.ErrNotExist", err)
	}
	if v, err := st.Version(ctx, "tokens"); v != "" || err != nil {
		t.Fatalf("Version of nothing: %q, %v", v, err)
	}
	for _, n := range []string{"journal/a/1.json", "journal/a/2.json", "journal/b/1.json", "policies/prod.yaml"} {
		if err := st.Put(ctx, n, []byte(n)); err != nil {
			t.Fatalf("Put %s: %v", n, err)
		}
	}
	got, err := st.List(ctx, "journal/")
	if want := []string{"journal/a/1.json", "journal/a/2.json", "journal/b/1.json"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("List journal/: %q, %v; want %q", got, err, want)
	}
	if got, _ := st.List(ctx, "journal/a/"); len(got) != 2 {
		t.Fatalf("List journal/a/: %q", got)
	}
	if ok, err := st.Create(ctx, "policies/prod.yaml", []byte("other")); ok || err != nil {
		t.Fatalf("Create over a document: %v, %v", ok, err)
	}
	if b, _ := st.Get(ctx, "policies/prod.yaml"); string(b) != "policies/prod.yaml" {
		t.Fatalf("Create replaced a document: %q", b)
	}
	if err := st.Delete(ctx, "journal/a/1.json"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "journal/a/1.json"); err != nil {
		t.Fatalf("Delete of nothing: %v", err)
	}
	if got, _ := st.List(ctx, "journal/a/"); !slices.Equal(got, []string{"journal/a/2.json"}) {
		t.Fatalf("after Delete: %q", got)
	}
	listAfterPages(t, st)
	editsNeverLoseUpdates(t, st)
	locksExclude(t, st)
}

// listAfterPages checks that ListAfter pages through List: every name
// once, in List's order, none of another prefix.
func listAfterPages(t *testing.T, st state.Store) {
	ctx := context.Background()
	var want []string
	for i := range 7 {
		n := fmt.Sprintf("pages/%02d", i)
		want = append(want, n)
		if err := st.Put(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(ctx, "pagesx", nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for range 10 {
		page, err := st.ListAfter(ctx, "pages/", after, 3)
		if err != nil {
			t.Fatalf("ListAfter: %v", err)
		}
		if len(page) > 3 {
			t.Fatalf("ListAfter gave %d names; limit 3", len(page))
		}
		got = append(got, page...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ListAfter pages: %q; want %q", got, want)
	}
	if _, err := st.ListAfter(ctx, "pages/", "", 0); err == nil {
		t.Fatal("ListAfter with limit 0: no error")
	}
}

func editsNeverLoseUpdates(t *testing.T, st state.Store) {
	ctx := context.Background()
	v0, _ := st.Version(ctx, "tokens")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			err := st.Edit(ctx, "tokens", func(old []byte) ([]byte, error) {
				return append(old, fmt.Sprintf("%d\n", i)...), nil
			})
			if err != nil {
				t.Errorf("Edit: %v", err)
			}
		})
	}
	wg.Wait()
	b, _ := st.Get(ctx, "tokens")
	if n := len(slices.DeleteFunc([]byte(string(b)), func(c byte) bool { return c != '\n' })); n != 8 {
		t.Fatalf("8 concurrent edits left %d lines: %q", n, b)
	}
	if v, _ := st.Version(ctx, "tokens"); v == v0 || v == "" {
		t.Fatalf("Version did not change on edit: %q", v)
	}
	if err := st.Edit(ctx, "tokens", func([]byte) ([]byte, error) { return nil, errors.New("refused") }); err == nil {
		t.Fatal("an edit that fails must fail Edit")
	}
	if b2, _ := st.Get(ctx, "tokens"); string(b2) != string(b) {
		t.Fatal("a failed edit changed the document")
	}
}

func locksExclude(t *testing.T, st state.Store) {
	ctx := context.Background()
	release, err := st.Lock(ctx, "reconcile")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.TryLock(ctx, "reconcile"); ok || err != nil {
		t.Fatalf("TryLock of a held lock: %v, %v", ok, err)
	}
	other, ok, err := st.TryLock(ctx, "replica/x")
	if !ok || err != nil {
		t.Fatalf("TryLock of a free lock: %v, %v", ok, err)
	}
	other()
	release()
	again, ok, err := st.TryLock(ctx, "reconcile")
	if !ok || err != nil {
		t.Fatalf("TryLock after release: %v, %v", ok, err)
	}
	again()
}
