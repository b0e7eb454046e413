package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// tokenReloadInterval is how long a running server goes on using what it
// read of the tokens file before it looks at the file again; so a revoked
// token is refused within it. A token the server does not know makes it
// look at once (a token created a moment ago works at once).
const tokenReloadInterval = time.Second

// tokenLastUsedFlush is how often the server writes the tokens' last use
// to DIR/tokens.used (only when a token was used since): one write per
// interval, whatever the request rate.
const tokenLastUsedFlush = 10 * time.Second

// Why a token is refused (401).
var (
	errTokenInvalid = errors.New("invalid token")
	errTokenRevoked = errors.New("token revoked")
	errTokenExpired = errors.New("token expired")
)

// tokenRefused reports whether err refuses a token (401), rather than
// failing to check it (500).
func tokenRefused(err error) bool {
	return errors.Is(err, errTokenInvalid) || errors.Is(err, errTokenRevoked) || errors.Is(err, errTokenExpired)
}

// TokenInfo describes the holder of a valid token.
type TokenInfo struct {
	Role api.Role
	Key  string // builder key the token is scoped to (builder role)
	Name string // never empty: the name, or ROLE-ID for an unnamed token
	ID   string // first TokenIDLen hex digits of the token's SHA-256
	// Person is who signed in through the OIDC provider, when a session
	// of theirs authenticated the request (Name is then their identity
	// and ID the session's short form); nil for a token.
	Person *Person

	hash [sha256.Size]byte
	// keyless marks an OIDC ID token of a trusted issuer (server_ca.go),
	// valid until expires.
	keyless bool
	expires time.Time
	sid     string // the session ID, when Person is set
}

// liveToken is a token record as the server uses it.
type liveToken struct {
	hash    [sha256.Size]byte
	hexHash string
	info    TokenInfo
	expires time.Time
	revoked bool
	// lastUsed is the Unix second of the last successful use by this
	// process (0: none), written to DIR/tokens.used in batches.
	lastUsed atomic.Int64
}

// tokenSet is one reading of the tokens file. Tokens are found by the
// first 8 bytes of their SHA-256 (a selector: that lookup may take time
// that depends on it), then the whole SHA-256 is compared in constant
// time.
type tokenSet struct {
	bySelector map[uint64][]*liveToken
	all        []*liveToken
}

func (s *tokenSet) find(h *[sha256.Size]byte) *liveToken {
	var found *liveToken
	for _, lt := range s.bySelector[binary.BigEndian.Uint64(h[:8])] {
		if subtle.ConstantTimeCompare(lt.hash[:], h[:]) == 1 && found == nil {
			found = lt
		}
	}
	return found
}

// tokenStore authenticates bearer tokens against DIR/tokens, which custody
// token create and revoke rewrite while the server runs: it reads the file
// again when it changed (at most tokenReloadInterval after, at once for a
// token it does not know). A line that holds no token record is skipped and
// logged, never fatal.
type tokenStore struct {
	st     state.Store
	logger *slog.Logger
	now    func() time.Time

	set       atomic.Pointer[tokenSet]
	nextCheck atomic.Int64 // Unix nanoseconds

	reloadMu sync.Mutex // one reload at a time
	version  string     // of the tokens read into set; "": none

	flushMu sync.Mutex
	used    map[string]time.Time // DIR/tokens.used as last written
	stopc   chan struct{}
	done    chan struct{}
}

func newTokenStore(st state.Store, logger *slog.Logger) *tokenStore {
	t := &tokenStore{st: st, logger: logger, now: time.Now}
	t.set.Store(&tokenSet{})
	return t
}

// lookup returns the holder of tok. A token that is unknown, revoked or
// expired is refused with errTokenInvalid, errTokenRevoked or
// errTokenExpired; another error means the tokens could not be read.
func (t *tokenStore) lookup(tok string) (*TokenInfo, error) {
	h := sha256.Sum256([]byte(tok))
	return t.lookupHash(&h)
}

// lookupHash is lookup by the token's SHA-256.
func (t *tokenStore) lookupHash(h *[sha256.Size]byte) (*TokenInfo, error) {
	now := t.now()
	if now.UnixNano() >= t.nextCheck.Load() {
		if err := t.refresh(now, false); err != nil {
			return nil, err
		}
	}
	lt := t.set.Load().find(h)
	if lt == nil {
		if err := t.refresh(now, true); err != nil {
			return nil, err
		}
		if lt = t.set.Load().find(h); lt == nil {
			return nil, errTokenInvalid
		}
	}
	switch {
	case lt.revoked:
		return nil, errTokenRevoked
	case !lt.expires.IsZero() && !now.Before(lt.expires):
		return nil, errTokenExpired
	}
	if sec := now.Unix(); lt.lastUsed.Load() < sec {
		lt.lastUsed.Store(sec)
	}
	info := lt.info
	return &info, nil
}

// refresh reads the tokens file again when it changed since it was last
// read. Unless force, it leaves it to a reload already under way.
func (t *tokenStore) refresh(now time.Time, force bool) error {
	if force {
		t.reloadMu.Lock()
	} else if !t.reloadMu.TryLock() {
		return nil
	}
	defer t.reloadMu.Unlock()
	ctx := context.Background()
	v, err := t.st.Version(ctx, tokenfile.File)
	if err != nil {
		t.logger.Error("couldn't read tokens", "err", err)
		return fmt.Errorf("couldn't read tokens: %w", err)
	}
	if v == t.version {
		t.nextCheck.Store(now.Add(tokenReloadInterval).UnixNano())
		return nil
	}
	b, err := t.st.Get(ctx, tokenfile.File)
	if errors.Is(err, fs.ErrNotExist) {
		b, err, v = nil, nil, ""
	}
	if err != nil {
		t.logger.Error("couldn't read tokens", "err", err)
		return fmt.Errorf("couldn't read tokens: %w", err)
	}
	t.set.Store(t.build(tokenfile.Parse(b), t.set.Load()))
	t.version = v
	t.nextCheck.Store(now.Add(tokenReloadInterval).UnixNano())
	return nil
}

// build makes the set of lines, carrying the last use over from old.
func (t *tokenStore) build(lines []tokenfile.Line, old *tokenSet) *tokenSet {
	s := &tokenSet{bySelector: map[uint64][]*liveToken{}}
	for _, l := range lines {
		if l.Err != nil {
			t.logger.Error("tokens file: line skipped", "file", tokenfile.File, "reason", l.Err.Error())
			continue
		}
		r := l.Rec
		lt := &liveToken{hexHash: r.SHA256, expires: r.Expires, revoked: !r.Revoked.IsZero(),
			info: TokenInfo{Role: r.Role, Key: r.Key, Name: r.DisplayName(), ID: r.ID()}}
		hex.Decode(lt.hash[:], []byte(r.SHA256)) // checked by tokenfile.Parse
		lt.info.hash = lt.hash
		if prev := old.find(&lt.hash); prev != nil {
			lt.lastUsed.Store(prev.lastUsed.Load())
		}
		sel := binary.BigEndian.Uint64(lt.hash[:8])
		if first := s.find(&lt.hash); first != nil {
			// The first line's role and key count; a revocation or an
			// expiry on any line holds.
			t.logger.Error("tokens file: a token is listed twice; the first line counts, revoked or expired if any is", "file", tokenfile.File, "id", r.ID())
			first.revoked = first.revoked || lt.revoked
			if !lt.expires.IsZero() && (first.expires.IsZero() || lt.expires.Before(first.expires)) {
				first.expires = lt.expires
			}
			continue
		}
		s.bySelector[sel] = append(s.bySelector[sel], lt)
		s.all = append(s.all, lt)
	}
	return s
}

// start reads the tokens (logging the lines it skips) and starts writing
// their last use every tokenLastUsedFlush.
func (t *tokenStore) start() {
	if err := t.refresh(t.now(), true); err != nil {
		t.logger.Error("couldn't read tokens", "err", err)
	}
	used, err := tokenfile.ReadLastUsedIn(context.Background(), t.st)
	if err != nil {
		t.logger.Error("couldn't read token use", "err", err)
	}
	t.flushMu.Lock()
	t.used = used
	t.flushMu.Unlock()
	t.stopc, t.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(t.done)
		tick := time.NewTicker(tokenLastUsedFlush)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
			case <-t.stopc:
				t.flush()
				return
			}
			t.flush()
		}
	}()
}

// stop writes the last use a final time and stops; a no-op unless started.
func (t *tokenStore) stop() {
	if t.stopc == nil {
		return
	}
	close(t.stopc)
	<-t.done
	t.stopc = nil
}

// flush writes DIR/tokens.used when a token was used since the last write.
func (t *tokenStore) flush() {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	if t.used == nil {
		t.used = map[string]time.Time{}
	}
	changed := false
	for _, lt := range t.set.Load().all {
		sec := lt.lastUsed.Load()
		if sec == 0 {
			continue
		}
		if tm := time.Unix(sec, 0).UTC(); tm.After(t.used[lt.hexHash]) {
			t.used[lt.hexHash] = tm
			changed = true
		}
	}
	if !changed {
		return
	}
	// Replicas share the record: each merges its uses into it.
	err := t.st.Edit(context.Background(), tokenfile.UsedFile, func(old []byte) ([]byte, error) {
		merged := map[string]time.Time{}
		json.Unmarshal(old, &merged) // a damaged record is started again
		for h, tm := range t.used {
			if tm.After(merged[h]) {
				merged[h] = tm
			}
		}
		return json.Marshal(merged)
	})
	if err != nil {
		t.logger.Error("couldn't record token use", "err", err)
	}
}
