package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Role is what a token may do.
type Role string

// Roles a token can have.
const (
	RoleBuilder  Role = "builder"
	RoleApprover Role = "approver"
	RoleDeployer Role = "deployer"
	RoleAuditor  Role = "auditor"
	RoleAdmin    Role = "admin"
)

// Roles lists every role.
func Roles() []Role {
	return []Role{RoleBuilder, RoleApprover, RoleDeployer, RoleAuditor, RoleAdmin}
}

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want builder, approver, deployer, auditor or admin)", s)
}

// TokenPrefix starts every token.
const TokenPrefix = "cust_"

// DefaultBuilderKey is the name of the builder key created on first start.
const DefaultBuilderKey = "builder"

// tokenRecord is one line of the tokens file. Only the token's hash is kept.
type tokenRecord struct {
	SHA256  string    `json:"sha256"`
	Role    Role      `json:"role"`
	Key     string    `json:"key,omitempty"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
}

// TokenInfo describes the holder of a valid token.
type TokenInfo struct {
	Role Role
	Key  string // builder key the token is scoped to (builder role)
	Name string
}

// CreateToken makes a new random 256-bit token of role r (scoped to the
// builder key named key, default DefaultBuilderKey, for the builder role),
// appends its SHA-256 to the tokens file of the data directory dir (created
// 0600) and returns the token. The token itself is stored nowhere.
func CreateToken(dir string, r Role, key, name string) (string, error) {
	if _, err := ParseRole(string(r)); err != nil {
		return "", err
	}
	if r == RoleBuilder && key == "" {
		key = DefaultBuilderKey
	}
	if r != RoleBuilder && key != "" {
		return "", errors.New("only builder tokens are scoped to a key")
	}
	if strings.ContainsAny(name, "\n\r") {
		return "", errors.New("token name must be one line")
	}
	var raw [32]byte
	rand.Read(raw[:])
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	rec := tokenRecord{SHA256: hashToken(tok), Role: r, Key: key, Name: name, Created: time.Now().UTC()}
	line, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("couldn't create data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, tokensFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("couldn't open tokens file: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("couldn't lock tokens file: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return "", fmt.Errorf("couldn't write tokens file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("couldn't write tokens file: %w", err)
	}
	return tok, nil
}

const tokensFile = "tokens"

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// tokens authenticates bearer tokens against the tokens file, which it
// re-reads whenever the file changed (custody token create may run while the
// server does).
type tokens struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	recs    []tokenRecord
}

func (t *tokens) reload() error {
	fi, err := os.Stat(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		t.recs = nil
		return nil
	}
	if err != nil {
		return err
	}
	if fi.ModTime().Equal(t.modTime) && fi.Size() == t.size && t.recs != nil {
		return nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return err
	}
	var recs []tokenRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r tokenRecord
		if err := json.Unmarshal(line, &r); err != nil || len(r.SHA256) != 64 {
			return fmt.Errorf("tokens file line %d is malformed", n)
		}
		recs = append(recs, r)
	}
	if recs == nil {
		recs = []tokenRecord{}
	}
	t.recs, t.modTime, t.size = recs, fi.ModTime(), fi.Size()
	return nil
}

// lookup returns the holder of tok, or nil when tok is not a valid token.
// Every record is compared, in constant time, so timing reveals nothing.
func (t *tokens) lookup(tok string) (*TokenInfo, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return nil, fmt.Errorf("couldn't read tokens: %w", err)
	}
	h := sha256.Sum256([]byte(tok))
	var found *TokenInfo
	for _, r := range t.recs {
		want, err := hex.DecodeString(r.SHA256)
		if err != nil {
			continue
		}
		if subtle.ConstantTimeCompare(h[:], want) == 1 && found == nil {
			found = &TokenInfo{Role: r.Role, Key: r.Key, Name: r.Name}
		}
	}
	return found, nil
}
