package tlog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// memTree is a log of n leaves held in memory, serving hash tiles as the
// POSIX driver does for a log of size n.
type memTree struct {
	leaves [][]byte
	reads  int
	mu     sync.Mutex
}

func newMemTree(n int) *memTree {
	t := &memTree{}
	for i := range n {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		t.leaves = append(t.leaves, rfc6962.DefaultHasher.HashLeaf(b[:]))
	}
	return t
}

// hash is the hash of the perfect subtree at level and index.
func (t *memTree) hash(level uint, index uint64) []byte {
	if level == 0 {
		return t.leaves[index]
	}
	return rfc6962.DefaultHasher.HashChildren(t.hash(level-1, 2*index), t.hash(level-1, 2*index+1))
}

// root is the root hash of the tree of the first size leaves.
func (t *memTree) root(size uint64) []byte {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, l := range t.leaves[:size] {
		if err := r.Append(l, nil); err != nil {
			panic(err)
		}
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		panic(err)
	}
	return h
}

// readTile serves tile (level, index) of width p (0: full) if the tree
// holds it.
func (t *memTree) readTile(_ context.Context, level, index uint64, p uint8) ([]byte, error) {
	t.mu.Lock()
	t.reads++
	t.mu.Unlock()
	w := uint64(p)
	if w == 0 {
		w = layout.TileWidth
	}
	lvl := uint(level * layout.TileHeight)
	if (index*layout.TileWidth+w)<<lvl > uint64(len(t.leaves)) {
		return nil, fs.ErrNotExist
	}
	var b []byte
	for i := range w {
		b = append(b, t.hash(lvl, index*layout.TileWidth+i)...)
	}
	return b, nil
}

// TestTileProofs checks the shared proof builder against tessera's
// client.ProofBuilder and against root hashes computed from the leaves, at
// sizes around tile boundaries of levels 0 and 1.
func TestTileProofs(t *testing.T) {
	ctx := context.Background()
	tree := newMemTree(65536 + 300)
	sizes := []uint64{1, 2, 3, 255, 256, 257, 511, 512, 513, 1000, 65535, 65536, 65537, 65536 + 300}
	for _, size := range sizes {
		t.Run(fmt.Sprint("size ", size), func(t *testing.T) {
			b := newTileProofs(size, tree.readTile)
			ref, err := client.NewProofBuilder(ctx, size, tree.readTile)
			if err != nil {
				t.Fatal(err)
			}
			root := tree.root(size)
			indexes := []uint64{0, size / 3, size / 2, size - 1}
			if size > 256 {
				indexes = append(indexes, 255, 256, size-257)
			}
			for _, i := range indexes {
				if i >= size {
					continue
				}
				got, err := b.inclusion(ctx, i)
				if err != nil {
					t.Fatalf("inclusion %d: %v", i, err)
				}
				want, err := ref.InclusionProof(ctx, i)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.EqualFunc(got, want, slices.Equal) {
					t.Errorf("inclusion %d differs from tessera's", i)
				}
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, tree.leaves[i], got, root); err != nil {
					t.Errorf("inclusion %d: %v", i, err)
				}
			}
			for _, older := range sizes {
				if older > size {
					break
				}
				got, err := b.consistency(ctx, older)
				if err != nil {
					t.Fatalf("consistency from %d: %v", older, err)
				}
				want, err := ref.ConsistencyProof(ctx, older, size)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.EqualFunc(got, want, slices.Equal) {
					t.Errorf("consistency from %d differs from tessera's", older)
				}
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older, size, got, tree.root(older), root); err != nil {
					t.Errorf("consistency from %d: %v", older, err)
				}
			}
		})
	}
	t.Run("out of range", func(t *testing.T) {
		b := newTileProofs(10, tree.readTile)
		if _, err := b.inclusion(ctx, 10); err == nil {
			t.Error("inclusion of index 10 in size 10 succeeded")
		}
		if _, err := b.consistency(ctx, 11); err == nil {
			t.Error("consistency from 11 to 10 succeeded")
		}
	})
	t.Run("proofs do not alias the cache", func(t *testing.T) {
		b := newTileProofs(300, tree.readTile)
		p, err := b.inclusion(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range p {
			clear(h)
		}
		p, err = b.inclusion(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 7, 300, tree.leaves[7], p, tree.root(300)); err != nil {
			t.Error(err)
		}
	})
	t.Run("one read per tile", func(t *testing.T) {
		size := uint64(65536 + 300)
		b := newTileProofs(size, tree.readTile)
		tree.reads = 0
		var wg sync.WaitGroup
		for i := size - 200; i < size; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := b.inclusion(ctx, i); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		// Level-0 tiles 256 and 257, at most one level-1 tile, and the
		// level-2 tile holding the left subtree of 65,536 leaves.
		if tree.reads > 4 {
			t.Errorf("%d tile reads for 200 proofs, want at most 4", tree.reads)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		b := newTileProofs(65536, tree.readTile)
		for i := uint64(0); i < 65536; i += 256 {
			if _, err := b.inclusion(ctx, i); err != nil {
				t.Fatal(err)
			}
			if len(b.tiles) > maxBuilderTiles {
				t.Fatalf("%d tiles kept, more than %d", len(b.tiles), maxBuilderTiles)
			}
		}
	})
	t.Run("cache keeps recent sizes", func(t *testing.T) {
		c := &proofCache{read: tree.readTile}
		first := c.get(1)
		for s := uint64(2); s <= maxCachedSizes+1; s++ {
			c.get(s)
		}
		if c.get(1) == first {
			t.Error("oldest size was not evicted")
		}
		if c.lookup(maxCachedSizes+1) != c.get(maxCachedSizes+1) {
			t.Error("lookup does not return the kept builder")
		}
		if c.lookup(1000); len(c.recent) != maxCachedSizes {
			t.Errorf("lookup kept a builder: %d kept", len(c.recent))
		}
	})
}

// TestPublishedCheckpointVerifiedOnce checks that a published checkpoint is
// answered from the kept one only for identical bytes.
func TestPublishedCheckpointVerifiedOnce(t *testing.T) {
	l := openLog(t, t.TempDir(), newECDSAKey(t))
	defer l.Close()
	add(t, l, "one")
	cp := latest(t, l)
	raw := cp.Note
	a, err := l.parsePublished(raw)
	if err != nil {
		t.Fatal(err)
	}
	a.Hash[0] ^= 1 // callers may modify what they get
	b, err := l.parsePublished(raw)
	if err != nil {
		t.Fatal(err)
	}
	if b.Hash[0] != cp.Hash[0] {
		t.Error("a caller's change reached the kept checkpoint")
	}
	if _, err := l.parsePublished(corruptSignature(t, raw)); err == nil {
		t.Error("a checkpoint with a corrupted signature was accepted")
	}
}

// corruptSignature flips a bit of the signature bytes of the note's first
// signature line. Flipping a character of the base64 text instead is not
// enough: the last character before padding carries unused bits, which the
// decoder ignores, so such a flip can leave the signature unchanged.
func corruptSignature(t *testing.T, note []byte) []byte {
	t.Helper()
	text, sigs, ok := bytes.Cut(note, []byte("\n\n"))
	if !ok {
		t.Fatal("note without signature block")
	}
	line, rest, _ := bytes.Cut(sigs, []byte("\n"))
	fields := bytes.Fields(line) // "—", name, base64(key hash || signature)
	if len(fields) != 3 {
		t.Fatalf("unexpected signature line %q", line)
	}
	sig, err := base64.StdEncoding.DecodeString(string(fields[2]))
	if err != nil || len(sig) < 8 {
		t.Fatalf("signature line %q: %v", line, err)
	}
	sig[len(sig)/2] ^= 1 // inside the signature, past the 4-byte key hash
	out := slices.Concat(text, []byte("\n\n"), fields[0], []byte(" "), fields[1], []byte(" "),
		[]byte(base64.StdEncoding.EncodeToString(sig)), []byte("\n"), rest)
	return out
}
