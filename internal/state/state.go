// Package state is where custody serve keeps its small state documents
// (tokens, the journal of writes in flight, policies, trust root versions,
// marks of how far reconciliation read): files in the data directory for
// one server (Dir), or rows in PostgreSQL for replicas (store.PGState),
// behind one interface. Names are slash-separated relative paths
// ("tokens", "journal/R/N.json", "policies/prod.yaml").
package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/custody-dev/custody/internal/fsutil"
)

// Store holds named documents. Its methods are safe for concurrent use,
// and for use by several processes (a data directory: custody serve and
// custody token; PostgreSQL: replicas).
type Store interface {
	// Get returns the document name (an error wrapping fs.ErrNotExist
	// when there is none).
	Get(ctx context.Context, name string) ([]byte, error)
	// Put durably stores b as name, replacing it atomically.
	Put(ctx context.Context, name string, b []byte) error
	// Create stores b as name unless a document of that name exists,
	// reporting whether it wrote.
	Create(ctx context.Context, name string, b []byte) (bool, error)
	// Delete removes name; a missing document is not an error.
	Delete(ctx context.Context, name string) error
	// List returns the names that start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// ListAfter returns, sorted, at most limit (> 0) of the names that
	// start with prefix and sort after after ("": from the first): a page
	// of List, for walks that must do bounded work at a time. The order
	// is the store's own (byte order for Dir, the database's collation
	// for PostgreSQL); pages continue from the last name of the previous
	// one.
	ListAfter(ctx context.Context, prefix, after string, limit int) ([]string, error)
	// Version returns a string that changes whenever name changes ("" when
	// there is none): readers cache a document until it does.
	Version(ctx context.Context, name string) (string, error)
	// Edit replaces name with what edit makes of it (nil: none yet),
	// excluding every other Edit of name meanwhile.
	Edit(ctx context.Context, name string, edit func(old []byte) ([]byte, error)) error
	// Lock waits for the exclusive lock called name (not a document) and
	// returns its release. A lock whose holder dies is released.
	Lock(ctx context.Context, name string) (release func(), err error)
	// TryLock takes the lock called name if it is free.
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
	// Shared reports whether other servers (replicas) use the store too.
	Shared() bool
}

// Dir is a Store of files below a data directory. Locks are flock(2)
// locks on files of DIR/locks (Edit of "tokens" locks DIR/tokens.lock, as
// custody token always has), also held within the process.
type Dir string

// ErrBadName is returned for a name that is not a clean relative path.
var ErrBadName = errors.New("not a clean relative state name")

func (d Dir) path(name string) (string, error) {
	if name == "" || path.Clean(name) != name || path.IsAbs(name) || strings.HasPrefix(name, "../") || name == ".." {
		return "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return filepath.Join(string(d), filepath.FromSlash(name)), nil
}

// mode is the permission of a document: policies and trust root versions
// are public documents; everything else is private.
func mode(name string) os.FileMode {
	if strings.HasPrefix(name, "policies/") || strings.HasPrefix(name, "trust-root/") {
		return 0o644
	}
	return 0o600
}

func (d Dir) Get(_ context.Context, name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

func (d Dir) Put(_ context.Context, name string, b []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("couldn't create %s: %w", filepath.Dir(p), err)
	}
	return fsutil.WriteFileDurable(p, b, mode(name))
}

func (d Dir) Create(_ context.Context, name string, b []byte) (bool, error) {
	p, err := d.path(name)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return false, fmt.Errorf("couldn't create %s: %w", filepath.Dir(p), err)
	}
	return fsutil.CreateFileDurable(p, b, mode(name))
}

func (d Dir) Delete(_ context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// List walks the directory holding prefix (prefix "journal/" lists the
// files below DIR/journal).
func (d Dir) List(_ context.Context, prefix string) ([]string, error) {
	base := string(d)
	dir := path.Dir(prefix + "x")
	if dir != "." {
		base = filepath.Join(base, filepath.FromSlash(dir))
	}
	var out []string
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(string(d), p)
		if err != nil {
			return err
		}
		if name := filepath.ToSlash(rel); strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// ListAfter is List, from after on, cut at limit. It walks the whole
// directory holding prefix: Dir keeps few documents of one kind.
func (d Dir) ListAfter(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("ListAfter: limit %d is not positive", limit)
	}
	all, err := d.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	i, _ := slices.BinarySearch(all, after)
	if i < len(all) && all[i] == after {
		i++
	}
	all = all[i:]
	return all[:min(limit, len(all))], nil
}

func (d Dir) Version(_ context.Context, name string) (string, error) {
	p, err := d.path(name)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d/%d/%d", ino, fi.ModTime().UnixNano(), fi.Size()), nil
}

func (d Dir) Edit(ctx context.Context, name string, edit func([]byte) ([]byte, error)) error {
	release, err := d.lockFile(ctx, name+".lock", true)
	if err != nil {
		return err
	}
	defer release()
	old, err := d.Get(ctx, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b, err := edit(old)
	if err != nil {
		return err
	}
	return d.Put(ctx, name, b)
}

func (d Dir) Lock(ctx context.Context, name string) (func(), error) {
	return d.lockFile(ctx, "locks/"+name, true)
}

func (d Dir) TryLock(ctx context.Context, name string) (func(), bool, error) {
	release, err := d.lockFile(ctx, "locks/"+name, false)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, false, nil
	}
	return release, err == nil, err
}

func (Dir) Shared() bool { return false }

// inProcess holds, per lock file, the lock within this process: flock
// locks are per open file, so two goroutines of one process would
// otherwise both hold them.
var inProcess sync.Map // path → *sync.Mutex

func (d Dir) lockFile(_ context.Context, name string, wait bool) (func(), error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	mu, _ := inProcess.LoadOrStore(p, new(sync.Mutex))
	m := mu.(*sync.Mutex)
	if wait {
		m.Lock()
	} else if !m.TryLock() {
		return nil, syscall.EWOULDBLOCK
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		m.Unlock()
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		m.Unlock()
		return nil, fmt.Errorf("couldn't lock %s: %w", name, err)
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		m.Unlock()
		return nil, err
	}
	return func() { f.Close(); m.Unlock() }, nil
}
