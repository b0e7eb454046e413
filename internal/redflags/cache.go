package redflags

import (
	"container/list"
	"sync"

	"github.com/custody-dev/custody/internal/store"
)

// Cache keeps the builds Compute read from index records, so that the
// next build of a lineage reads its history without parsing it again
// (bench/redflags: parsing is most of a cold computation). Index records
// never change (the index is append-only), so an entry never goes stale.
// A Cache is safe for concurrent use; the zero value is not usable: call
// NewCache.
type Cache struct {
	mu  sync.Mutex
	max int
	m   map[cacheKey]*list.Element
	l   *list.List // most recently used first; values are *cacheEntry
}

type cacheKey struct {
	id   int64
	name string
}

type cacheEntry struct {
	key cacheKey
	b   *Build
}

// NewCache returns a cache of at most max builds (least recently used
// dropped first).
func NewCache(max int) *Cache {
	return &Cache{max: max, m: map[cacheKey]*list.Element{}, l: list.New()}
}

// build returns the build of subject name in record e, from the cache or
// read and added. A record whose provenance does not read is not cached.
func (c *Cache) build(e *store.Evidence, name string) (*Build, error) {
	if c == nil {
		return FromEvidence(e, name)
	}
	k := cacheKey{e.ID, name}
	c.mu.Lock()
	if el, ok := c.m[k]; ok {
		c.l.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*cacheEntry).b, nil
	}
	c.mu.Unlock()
	b, err := FromEvidence(e, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok {
		c.m[k] = c.l.PushFront(&cacheEntry{k, b})
		for c.l.Len() > c.max {
			old := c.l.Remove(c.l.Back()).(*cacheEntry)
			delete(c.m, old.key)
		}
	}
	return b, nil
}
