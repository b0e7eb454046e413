package store

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts is how many statement shapes (distinct SQL texts) a
// stmtCache holds. Queries beyond it are prepared on every call, as without
// a cache.
const maxCachedStmts = 256

// stmtCache keeps one prepared *sql.Stmt per SQL text, so that a driver
// without a statement cache of its own (modernc.org/sqlite) does not parse
// and plan a statement on every call. It never evicts: the first
// maxCachedStmts shapes stay prepared until close, later ones are not
// cached. It is safe for concurrent use; the zero value is ready to use.
type stmtCache struct {
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	closed bool
}

// query runs stmt on db through the cache's prepared statement for stmt,
// preparing and caching it on first use while the cache has room. A
// statement that fails to prepare is not cached; the query then runs
// unprepared and reports its own error.
func (c *stmtCache) query(ctx context.Context, db *sql.DB, stmt string, args ...any) (*sql.Rows, error) {
	if ps := c.get(ctx, db, stmt); ps != nil {
		return ps.QueryContext(ctx, args...)
	}
	return db.QueryContext(ctx, stmt, args...)
}

// get returns the prepared statement for stmt, or nil when the cache is
// full or closed or stmt fails to prepare.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, stmt string) *sql.Stmt {
	c.mu.Lock()
	ps, ok := c.stmts[stmt]
	full := c.closed || len(c.stmts) >= maxCachedStmts
	c.mu.Unlock()
	if ok {
		return ps
	}
	if full {
		return nil
	}
	// Prepare outside the lock: preparing takes a connection and may wait
	// for one. Two callers may prepare the same text; the loser closes its
	// copy.
	ps, err := db.PrepareContext(ctx, stmt)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.stmts[stmt]; ok {
		ps.Close()
		return prev
	}
	if c.closed || len(c.stmts) >= maxCachedStmts {
		ps.Close()
		return nil
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[stmt] = ps
	return ps
}

// close closes every cached statement; later queries run unprepared (and
// fail once the database is closed).
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var first error
	for _, ps := range c.stmts {
		if err := ps.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.stmts = nil
	return first
}

// len returns how many statements are cached.
func (c *stmtCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.stmts)
}
