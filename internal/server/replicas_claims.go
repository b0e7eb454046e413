package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
)

// Claims. One server keeps the build IDs and pushes being written right
// now in memory (Server.building), so that one build is signed once. With
// replicas, the same build sent to two replicas at once would pass both
// (neither is indexed yet): a replica also claims the build ID among all
// replicas, as the document claims/HEX (HEX the SHA-256 of the key)
// holding its replica ID, created only if absent and deleted when the
// write ends. A claim whose replica is gone (its lock replica/ID free) is
// deleted by reconcileGone once that replica's journal is replayed, so
// that a retry finds what the write left in the index.

const claimsDir = "claims"

// errClaimedByGone refuses a write whose claim a replica that is gone
// still holds, until its journal is replayed (503, retry).
var errClaimedByGone = fmt.Errorf("%w: a replica that stopped was writing it; retry in a few seconds", errPushInFlight)

func claimName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return claimsDir + "/" + hex.EncodeToString(sum[:])
}

// claimShared claims key among replicas (a no-op for one server). It
// returns errInFlight when a live replica holds it, errClaimedByGone
// when a replica that is gone does.
func (s *Server) claimShared(ctx context.Context, key string, errInFlight error) (release func(), err error) {
	if !s.state.Shared() {
		return func() {}, nil
	}
	name := claimName(key)
	ok, err := s.state.Create(ctx, name, []byte(s.replica.id))
	if err != nil {
		return nil, fmt.Errorf("couldn't claim the write among replicas: %w", err)
	}
	if ok {
		return func() {
			if err := s.state.Delete(context.WithoutCancel(ctx), name); err != nil {
				s.logger.Error("couldn't release a claim; the sweep of the next start releases it", "err", err)
			}
		}, nil
	}
	owner, err := s.state.Get(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errInFlight // released a moment ago: the retry sees its record
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read a claim: %w", err)
	}
	if string(owner) == s.replica.id {
		return nil, errInFlight
	}
	unlock, free, err := s.state.TryLock(ctx, "replica/"+string(owner))
	if err != nil {
		return nil, err
	}
	if free {
		unlock()
		return nil, errClaimedByGone
	}
	return nil, errInFlight
}

// claimsByOwner returns the names of the claims of every other replica,
// by replica ID.
func (s *Server) claimsByOwner(ctx context.Context) (map[string][]string, error) {
	names, err := s.state.List(ctx, claimsDir+"/")
	if err != nil {
		return nil, err
	}
	owners := map[string][]string{}
	for _, n := range names {
		b, err := s.state.Get(ctx, n)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if o := string(b); o != s.replica.id {
			owners[o] = append(owners[o], n)
		}
	}
	return owners, nil
}
