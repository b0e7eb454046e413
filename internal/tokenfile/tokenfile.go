// Package tokenfile reads and edits the API tokens of a custody data
// directory (DIR/tokens, one JSON record per line holding only the token's
// SHA-256, and DIR/tokens.used). The `custody token` commands edit it
// directly; the server reads it and checks presented tokens against it.
// Edits are serialised by a lock file and written durably (0600). The
// ...In functions do the same on any state.Store: the tokens of replicas
// live in PostgreSQL (custody token --db).
package tokenfile

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/state"
)

// Token files in the data directory.
const (
	File     = "tokens"      // one Record per line (0600)
	lockFile = "tokens.lock" // serialises the commands that rewrite File
	UsedFile = "tokens.used" // last use of each token, written by the server in batches
)

// Errors of the token commands.
var (
	// ErrTokenNotFound: no token that is not revoked has that name or ID.
	ErrTokenNotFound = errors.New("no such token")
	// ErrTokenExists: a token that is not revoked already has that name.
	ErrTokenExists = errors.New("a token of that name exists")
	// ErrTokenAmbiguous: several older tokens share the name; name the ID.
	ErrTokenAmbiguous = errors.New("several tokens have that name")
)

// Record is one line of the tokens file. Only the token's SHA-256 is
// kept. Lines written before expiry and revocation existed lack Expires
// and Revoked (never expires, not revoked) and may lack Name (the token is
// then named ROLE-ID).
type Record struct {
	SHA256  string    `json:"sha256"`
	Role    api.Role  `json:"role"`
	Key     string    `json:"key,omitempty"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	Revoked time.Time `json:"revoked,omitzero"`
}

// maxTokenName bounds a token's name, in bytes.
const maxTokenName = 64

func (r *Record) ID() string { return r.SHA256[:api.TokenIDLen] }

// name is the record's name, or ROLE-ID for an unnamed (older) record.
func (r *Record) DisplayName() string {
	if r.Name != "" {
		return r.Name
	}
	return string(r.Role) + "-" + r.ID()
}

// check reports why a parsed line is not a usable record.
func (r *Record) check() error {
	if len(r.SHA256) != 2*sha256.Size || strings.ToLower(r.SHA256) != r.SHA256 {
		return errors.New("sha256 is not 64 lowercase hex digits")
	}
	if _, err := hex.DecodeString(r.SHA256); err != nil {
		return errors.New("sha256 is not 64 lowercase hex digits")
	}
	if _, err := api.ParseRole(string(r.Role)); err != nil {
		return err
	}
	return nil
}

// Line is one line of the tokens file: its bytes, and the record when
// the line holds one (Err says why not).
type Line struct {
	raw []byte
	Rec *Record
	Err error
}

// Parse splits a tokens file into lines. A line that is not a token
// record is kept with the reason (never its content, which might hold a
// pasted secret); blank lines are dropped.
func Parse(b []byte) []Line {
	var out []Line
	for n, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		tl := Line{raw: line}
		var r Record
		switch err := json.Unmarshal(line, &r); {
		case err != nil:
			tl.Err = fmt.Errorf("line %d is not a token record (JSON object)", n+1)
		default:
			if err := r.check(); err != nil {
				tl.Err = fmt.Errorf("line %d: %v", n+1, err)
			} else {
				tl.Rec = &r
			}
		}
		out = append(out, tl)
	}
	return out
}

// TokenSpec describes a token to create.
type TokenSpec struct {
	Role api.Role
	// Key is the builder key a builder token signs with (default
	// DefaultBuilderKey); other roles have none.
	Key string
	// Name labels the token in lists, logs and audit entries; unique among
	// the tokens not revoked. Default ROLE-ID.
	Name string
	// Expires is when the token stops working; zero: never.
	Expires time.Time
}

func statusOf(r *Record, used map[string]time.Time) api.TokenStatus {
	return api.TokenStatus{ID: r.ID(), Name: r.DisplayName(), Role: r.Role, Key: r.Key, Created: r.Created,
		Expires: r.Expires, Revoked: r.Revoked, LastUsed: used[r.SHA256]}
}

// checkTokenName refuses names that would not print on one line.
func checkTokenName(name string) error {
	switch {
	case len(name) > maxTokenName:
		return fmt.Errorf("token name is longer than %d bytes", maxTokenName)
	case !utf8.ValidString(name):
		return errors.New("token name is not UTF-8")
	case strings.TrimSpace(name) != name:
		return errors.New("token name starts or ends with a space")
	case looksLikeID(name):
		return fmt.Errorf("token name %q looks like a token ID (%d or more hex digits)", name, api.TokenIDLen)
	}
	for _, c := range name {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("token name holds the unprintable character %q", c)
		}
	}
	return nil
}

// looksLikeID reports whether s could be a token ID or a longer prefix of
// a token's SHA-256, which revoke also accepts.
func looksLikeID(s string) bool {
	if len(s) < api.TokenIDLen || len(s) > 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil && strings.ToLower(s) == s
}

// CreateToken makes a token of role r that never expires (NewToken).
func CreateToken(dir string, r api.Role, key, name string) (string, error) {
	tok, _, err := NewToken(dir, TokenSpec{Role: r, Key: key, Name: name})
	return tok, err
}

// NewToken makes a new random 256-bit token as spec says, adds its SHA-256
// to the tokens file of the data directory dir (created 0600) and returns
// the token, which is stored nowhere, and its status. A running server
// accepts it from its next request. A name in use by a token that is not
// revoked is refused (ErrTokenExists).
func NewToken(dir string, spec TokenSpec) (string, api.TokenStatus, error) {
	return NewTokenIn(context.Background(), state.Dir(dir), spec)
}

// NewTokenIn is NewToken on the tokens of st.
func NewTokenIn(ctx context.Context, st state.Store, spec TokenSpec) (string, api.TokenStatus, error) {
	if _, err := api.ParseRole(string(spec.Role)); err != nil {
		return "", api.TokenStatus{}, err
	}
	if spec.Role == api.RoleBuilder && spec.Key == "" {
		spec.Key = api.DefaultBuilderKey
	}
	if spec.Role != api.RoleBuilder && spec.Key != "" {
		return "", api.TokenStatus{}, errors.New("only builder tokens are scoped to a key")
	}
	if err := checkTokenName(spec.Name); err != nil {
		return "", api.TokenStatus{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	if !spec.Expires.IsZero() && !spec.Expires.After(now) {
		return "", api.TokenStatus{}, fmt.Errorf("expiry %s is not in the future", spec.Expires.UTC().Format(time.RFC3339))
	}
	var raw [32]byte
	rand.Read(raw[:])
	tok := api.TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	rec := &Record{SHA256: hashToken(tok), Role: spec.Role, Key: spec.Key, Name: spec.Name, Created: now}
	if !spec.Expires.IsZero() {
		rec.Expires = spec.Expires.UTC().Truncate(time.Second)
	}
	err := editTokens(ctx, st, func(lines []Line) ([]Line, error) {
		for _, l := range lines {
			if l.Rec != nil && l.Rec.Revoked.IsZero() && l.Rec.DisplayName() == rec.DisplayName() {
				return nil, fmt.Errorf("%w: %s (revoke it first, or choose another --name)", ErrTokenExists, rec.DisplayName())
			}
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		return append(lines, Line{raw: b, Rec: rec}), nil
	})
	if err != nil {
		return "", api.TokenStatus{}, err
	}
	return tok, statusOf(rec, nil), nil
}

// RevokeToken marks the token named nameOrID (its name, or its ID or a
// longer prefix of its SHA-256) revoked in the tokens file of dir. A
// running server refuses it within tokenReloadInterval, and ends its
// dashboard sessions. The record stays, marked, so lists keep showing who
// held what. ErrTokenNotFound when no token that is not revoked matches;
// a name that several older tokens share is refused: name the ID.
func RevokeToken(dir, nameOrID string) (api.TokenStatus, error) {
	return RevokeTokenIn(context.Background(), state.Dir(dir), nameOrID)
}

// RevokeTokenIn is RevokeToken on the tokens of st.
func RevokeTokenIn(ctx context.Context, st state.Store, nameOrID string) (api.TokenStatus, error) {
	return revokeToken(ctx, st, func(lines []Line) (int, error) { return findToken(lines, nameOrID) })
}

// RevokeID revokes the token whose ID is id, never one merely named
// so (the token API, which has resolved the name and audited the ID).
func RevokeID(dir, id string) (api.TokenStatus, error) {
	return RevokeIDIn(context.Background(), state.Dir(dir), id)
}

// RevokeIDIn is RevokeID on the tokens of st.
func RevokeIDIn(ctx context.Context, st state.Store, id string) (api.TokenStatus, error) {
	return revokeToken(ctx, st, func(lines []Line) (int, error) {
		for i, l := range lines {
			if l.Rec != nil && l.Rec.Revoked.IsZero() && l.Rec.ID() == id {
				return i, nil
			}
		}
		return 0, fmt.Errorf("%w with ID %s that is not revoked", ErrTokenNotFound, id)
	})
}

// revokeToken marks revoked the token of the line find picks: that line
// and any other that lists the same token (a hand-edited file may).
func revokeToken(ctx context.Context, store state.Store, find func([]Line) (int, error)) (api.TokenStatus, error) {
	var st api.TokenStatus
	err := editTokens(ctx, store, func(lines []Line) ([]Line, error) {
		i, err := find(lines)
		if err != nil {
			return nil, err
		}
		hash, now := lines[i].Rec.SHA256, time.Now().UTC().Truncate(time.Second)
		for j, l := range lines {
			if l.Rec == nil || l.Rec.SHA256 != hash || !l.Rec.Revoked.IsZero() {
				continue
			}
			rec := *l.Rec
			rec.Revoked = now
			b, err := json.Marshal(&rec)
			if err != nil {
				return nil, err
			}
			lines[j] = Line{raw: b, Rec: &rec}
			if j == i {
				st = statusOf(&rec, nil)
			}
		}
		return lines, nil
	})
	return st, err
}

// findToken returns the index of the one line whose record is not revoked
// and is named, or has an ID (hash prefix of at least TokenIDLen digits),
// nameOrID.
func findToken(lines []Line, nameOrID string) (int, error) {
	var byName, byID []int
	idHashes := map[string]bool{}
	for i, l := range lines {
		if l.Rec == nil || !l.Rec.Revoked.IsZero() {
			continue
		}
		if l.Rec.DisplayName() == nameOrID {
			byName = append(byName, i)
		}
		if len(nameOrID) >= api.TokenIDLen && strings.HasPrefix(l.Rec.SHA256, nameOrID) && !idHashes[l.Rec.SHA256] {
			idHashes[l.Rec.SHA256] = true
			byID = append(byID, i)
		}
	}
	switch {
	case len(byName) > 0 && len(byID) > 0 && (len(byName) > 1 || len(byID) > 1 || lines[byName[0]].Rec.SHA256 != lines[byID[0]].Rec.SHA256):
		return 0, fmt.Errorf("%w: %q is the name of one token and the ID of another: revoke by the full ID (SHA-256 prefix) of the one you mean", ErrTokenAmbiguous, nameOrID)
	case len(byName) == 1:
		return byName[0], nil
	case len(byName) > 1:
		ids := make([]string, len(byName))
		for j, i := range byName {
			ids[j] = lines[i].Rec.ID()
		}
		return 0, fmt.Errorf("%w: %d tokens are named %q (IDs %s): revoke one by its ID", ErrTokenAmbiguous, len(byName), nameOrID, strings.Join(ids, ", "))
	case len(byID) == 1:
		return byID[0], nil
	}
	return 0, fmt.Errorf("%w named %q that is not revoked", ErrTokenNotFound, nameOrID)
}

// FindToken returns the token RevokeToken(dir, nameOrID) would revoke.
func FindToken(dir, nameOrID string) (api.TokenStatus, error) {
	return FindTokenIn(context.Background(), state.Dir(dir), nameOrID)
}

// FindTokenIn is FindToken on the tokens of st.
func FindTokenIn(ctx context.Context, st state.Store, nameOrID string) (api.TokenStatus, error) {
	b, err := st.Get(ctx, File)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return api.TokenStatus{}, fmt.Errorf("couldn't read tokens: %w", err)
	}
	lines := Parse(b)
	i, err := findToken(lines, nameOrID)
	if err != nil {
		return api.TokenStatus{}, err
	}
	return statusOf(lines[i].Rec, nil), nil
}

// ListTokens reads the tokens of the data directory dir, with their last
// use as the server last recorded it.
func ListTokens(dir string) (*api.TokenList, error) {
	return ListTokensIn(context.Background(), state.Dir(dir))
}

// ListTokensIn is ListTokens on the tokens of st.
func ListTokensIn(ctx context.Context, st state.Store) (*api.TokenList, error) {
	b, err := st.Get(ctx, File)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("couldn't read tokens: %w", err)
	}
	used, err := ReadLastUsedIn(ctx, st)
	if err != nil {
		return nil, err
	}
	out := &api.TokenList{Tokens: []api.TokenStatus{}}
	for _, l := range Parse(b) {
		if l.Err != nil {
			out.Skipped = append(out.Skipped, l.Err.Error())
			continue
		}
		out.Tokens = append(out.Tokens, statusOf(l.Rec, used))
	}
	return out, nil
}

// editTokens rewrites the tokens of st with what edit makes of its lines,
// excluding other edits (a data directory: holding DIR/tokens.lock).
// Lines edit leaves alone are written back byte for byte (also those that
// hold no record). The new document replaces the old one atomically
// (0600), so the server reads the old or the new.
func editTokens(ctx context.Context, st state.Store, edit func([]Line) ([]Line, error)) error {
	err := st.Edit(ctx, File, func(b []byte) ([]byte, error) {
		lines, err := edit(Parse(b))
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		for _, l := range lines {
			out.Write(l.raw)
			out.WriteByte('\n')
		}
		return out.Bytes(), nil
	})
	return err
}

// ReadLastUsed reads DIR/tokens.used: token SHA-256 → last use.
func ReadLastUsed(path string) (map[string]time.Time, error) {
	b, err := os.ReadFile(path)
	return parseLastUsed(b, err)
}

// ReadLastUsedIn reads the tokens' last use in st.
func ReadLastUsedIn(ctx context.Context, st state.Store) (map[string]time.Time, error) {
	b, err := st.Get(ctx, UsedFile)
	return parseLastUsed(b, err)
}

func parseLastUsed(b []byte, err error) (map[string]time.Time, error) {
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read token use: %w", err)
	}
	m := map[string]time.Time{}
	if err := json.Unmarshal(b, &m); err != nil {
		// Only a record of use: a damaged one is started again.
		return map[string]time.Time{}, nil
	}
	return m, nil
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}
