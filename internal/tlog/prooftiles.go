package tlog

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// maxBuilderTiles bounds the tiles one tileProofs keeps (8 KiB each when
// full); past it, its tiles and node hashes are dropped and read again.
// The proofs of entries awaiting one checkpoint touch a handful of tiles.
const maxBuilderTiles = 64

// maxCachedSizes is how many tree sizes proofCache keeps a builder for.
const maxCachedSizes = 4

// tileProofs builds RFC 6962 proofs in the tree of one size from the log's
// hash tiles (https://c2sp.org/tlog-tiles), as tessera's
// client.ProofBuilder does, but keeps every tile it reads and every node
// hash it computes: the proofs of all entries awaiting the same checkpoint
// then cost one read per tile and one hash per node between them, instead
// of re-reading tiles and re-hashing up to 255 leaves per level per proof.
// It is safe for concurrent use.
//
// Only perfect subtrees' hashes are kept, and those never change in an
// append-only log, so a kept hash is right for any later proof at this size.
type tileProofs struct {
	size uint64
	read client.TileFetcherFunc

	mu    sync.Mutex
	tiles map[tileID][]byte         // raw tiles, width as of size
	nodes map[compact.NodeID][]byte // hashes of perfect subtrees
}

type tileID struct{ level, index uint64 }

func newTileProofs(size uint64, read client.TileFetcherFunc) *tileProofs {
	return &tileProofs{size: size, read: read, tiles: map[tileID][]byte{}, nodes: map[compact.NodeID][]byte{}}
}

// inclusion returns the inclusion proof of the leaf at index.
func (b *tileProofs) inclusion(ctx context.Context, index uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, b.size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRange, err)
	}
	p, err := b.hashes(ctx, nodes)
	if err != nil {
		return nil, fmt.Errorf("couldn't build inclusion proof: %w", err)
	}
	return p, nil
}

// consistency returns the consistency proof from the tree of size older to
// this builder's size.
func (b *tileProofs) consistency(ctx context.Context, older uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(older, b.size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRange, err)
	}
	p, err := b.hashes(ctx, nodes)
	if err != nil {
		return nil, fmt.Errorf("couldn't build consistency proof: %w", err)
	}
	return p, nil
}

// hashes fetches the hashes of nodes and folds the ephemeral node. The
// result shares no memory with the builder.
func (b *tileProofs) hashes(ctx context.Context, nodes proof.Nodes) ([][]byte, error) {
	h := make([][]byte, len(nodes.IDs))
	b.mu.Lock()
	for i, id := range nodes.IDs {
		n, err := b.node(ctx, id)
		if err != nil {
			b.mu.Unlock()
			return nil, err
		}
		h[i] = n
	}
	b.mu.Unlock()
	// Rehash replaces elements of h, never the bytes they point to.
	h, err := nodes.Rehash(h, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return nil, err
	}
	for i := range h {
		h[i] = bytes.Clone(h[i])
	}
	return h, nil
}

// node returns the hash of the perfect subtree id, which must lie inside
// the tree of size b.size. b.mu is held.
func (b *tileProofs) node(ctx context.Context, id compact.NodeID) ([]byte, error) {
	if h, ok := b.nodes[id]; ok {
		return h, nil
	}
	if end := (id.Index + 1) << id.Level; end > b.size || end>>id.Level != id.Index+1 {
		return nil, fmt.Errorf("node %d/%d is not inside the tree of size %d", id.Level, id.Index, b.size)
	}
	var h []byte
	if id.Level%layout.TileHeight == 0 {
		// Stored: the tiles of tile level L hold the nodes of tree level 8L.
		t, err := b.tile(ctx, uint64(id.Level)/layout.TileHeight, id.Index/layout.TileWidth)
		if err != nil {
			return nil, err
		}
		off := int(id.Index%layout.TileWidth) * rfc6962.DefaultHasher.Size()
		if off+rfc6962.DefaultHasher.Size() > len(t) {
			return nil, fmt.Errorf("tile of node %d/%d has %d bytes, too few for the tree of size %d",
				id.Level, id.Index, len(t), b.size)
		}
		h = t[off : off+rfc6962.DefaultHasher.Size()]
	} else {
		l, err := b.node(ctx, compact.NewNodeID(id.Level-1, 2*id.Index))
		if err != nil {
			return nil, err
		}
		r, err := b.node(ctx, compact.NewNodeID(id.Level-1, 2*id.Index+1))
		if err != nil {
			return nil, err
		}
		h = rfc6962.DefaultHasher.HashChildren(l, r)
	}
	b.nodes[id] = h
	return h, nil
}

// tile returns the hash tile at level and index, as wide as it is in the
// tree of size b.size. b.mu is held.
func (b *tileProofs) tile(ctx context.Context, level, index uint64) ([]byte, error) {
	id := tileID{level, index}
	if t, ok := b.tiles[id]; ok {
		return t, nil
	}
	t, err := b.read(ctx, level, index, layout.PartialTileSize(level, index, b.size))
	if err != nil {
		return nil, fmt.Errorf("couldn't read tile %d/%d: %w", level, index, err)
	}
	if len(b.tiles) >= maxBuilderTiles {
		clear(b.tiles)
		clear(b.nodes)
	}
	b.tiles[id] = t
	return t, nil
}

// proofCache keeps the tileProofs of the latest few tree sizes, so that
// entries awaiting the same checkpoint share one.
type proofCache struct {
	read client.TileFetcherFunc

	mu     sync.Mutex
	recent []*tileProofs // oldest first
}

// get returns the builder for size, creating (and keeping) it if needed.
func (c *proofCache) get(size uint64) *tileProofs {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.recent {
		if b.size == size {
			return b
		}
	}
	b := newTileProofs(size, c.read)
	if len(c.recent) >= maxCachedSizes {
		c.recent = append(c.recent[:0], c.recent[1:]...)
	}
	c.recent = append(c.recent, b)
	return b
}

// lookup returns the kept builder for size, or a new one that is not kept:
// proofs requested by readers at arbitrary sizes must not evict the
// builders that appends share.
func (c *proofCache) lookup(size uint64) *tileProofs {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.recent {
		if b.size == size {
			return b
		}
	}
	return newTileProofs(size, c.read)
}
