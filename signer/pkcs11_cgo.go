//go:build cgo

package signer

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// maxPKCS11Sessions bounds the sessions one token context opens (crypto11
// pools them; each concurrent Sign takes one).
const maxPKCS11Sessions = 64

// A token context is shared by every signer of the same token in this
// process. PKCS#11 login state belongs to the application, not to a session
// or a crypto11 context, so a second context on a logged-in token would
// accept any PIN; sharing one context, and comparing each later PIN with the
// one that logged in, keeps a wrong PIN an error.
type tokenKey struct {
	module string
	slot   uint
}

type tokenCtx struct {
	ctx    *crypto11.Context
	pinSum [32]byte
	refs   int
	label  string
}

var (
	tokensMu sync.Mutex // guards tokens and every module Initialize/Finalize
	tokens   = map[tokenKey]*tokenCtx{}
)

// acquireToken returns the shared context of the token u names, logging in
// on first use, and a function that releases it (call it exactly once; the
// PKCS11Signer that owns it does, from Close). The last release closes the
// context, which ends its sessions and finalizes the module.
func acquireToken(u *PKCS11URI) (*tokenCtx, func() error, error) {
	module, err := u.module()
	if err != nil {
		return nil, nil, err
	}
	pin, err := u.pin()
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256([]byte(pin))
	tokensMu.Lock()
	defer tokensMu.Unlock()
	slot, label, err := findSlot(module, u)
	if err != nil {
		return nil, nil, err
	}
	key := tokenKey{module, slot}
	t := tokens[key]
	if t != nil {
		if subtle.ConstantTimeCompare(t.pinSum[:], sum[:]) != 1 {
			return nil, nil, fmt.Errorf("pkcs11: token %q refused the PIN: %w", label, ErrWrongPIN)
		}
	} else {
		slotNum := int(slot)
		ctx, err := crypto11.Configure(&crypto11.Config{Path: module, SlotNumber: &slotNum, Pin: pin, MaxSessions: maxPKCS11Sessions})
		if err != nil {
			return nil, nil, loginError(label, err)
		}
		t = &tokenCtx{ctx: ctx, pinSum: sum, label: label}
		tokens[key] = t
	}
	t.refs++
	release := func() error {
		tokensMu.Lock()
		defer tokensMu.Unlock()
		if t.refs--; t.refs > 0 {
			return nil
		}
		delete(tokens, key)
		if err := t.ctx.Close(); err != nil {
			return fmt.Errorf("pkcs11: couldn't close token %q: %w", label, err)
		}
		return nil
	}
	return t, release, nil
}

// withToken is the one path by which a signer gets hold of a token: it
// acquires the token u names, runs use on its context, and wraps the key use
// returns (named by the URI it returns) in a PKCS11Signer that releases the
// token on Close. When use fails, the token is released at once.
func withToken(u *PKCS11URI, use func(t *tokenCtx) (crypto.Signer, *PKCS11URI, error)) (*PKCS11Signer, error) {
	t, release, err := acquireToken(u)
	if err != nil {
		return nil, err
	}
	k, named, err := use(t)
	if err != nil {
		release()
		return nil, err
	}
	return &PKCS11Signer{key: k, uri: named.String(), release: release, closed: make(chan struct{})}, nil
}

// loginError explains why crypto11 could not open the token; it never
// includes the PIN.
func loginError(label string, err error) error {
	var rv pkcs11.Error
	if errors.As(err, &rv) {
		switch rv {
		case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE:
			return fmt.Errorf("pkcs11: token %q refused the PIN: %w", label, ErrWrongPIN)
		case pkcs11.CKR_PIN_LOCKED:
			return fmt.Errorf("pkcs11: token %q: the user PIN is locked (unlock it with the token's SO PIN)", label)
		case pkcs11.CKR_USER_PIN_NOT_INITIALIZED:
			return fmt.Errorf("pkcs11: token %q has no user PIN yet (initialize it)", label)
		}
	}
	return fmt.Errorf("pkcs11: couldn't open token %q: %w", label, err)
}

func isRV(err error, rv pkcs11.Error) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && e == rv
}

func trim(s string) string { return strings.TrimRight(s, " \x00") }

// findSlot returns the one slot whose token matches every token, slot and
// library attribute of u. Callers hold tokensMu: it initializes the module
// when no context has, and finalizes it again before returning, so that
// crypto11 can initialize it next.
func findSlot(module string, u *PKCS11URI) (uint, string, error) {
	if _, err := os.Stat(module); err != nil {
		return 0, "", fmt.Errorf("pkcs11: module %s: %w", module, err)
	}
	p := pkcs11.New(module)
	if p == nil {
		return 0, "", fmt.Errorf("pkcs11: couldn't load module %s (is it a PKCS#11 library for this machine?)", module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		if !isRV(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			return 0, "", fmt.Errorf("pkcs11: couldn't initialize module %s: %w", module, err)
		}
	} else {
		defer p.Finalize()
	}
	if u.LibraryManufacturer != "" || u.LibraryDescription != "" || u.LibraryVersion != "" {
		info, err := p.GetInfo()
		if err != nil {
			return 0, "", fmt.Errorf("pkcs11: couldn't read module information: %w", err)
		}
		if !matchAttr(u.LibraryManufacturer, info.ManufacturerID) || !matchAttr(u.LibraryDescription, info.LibraryDescription) ||
			u.LibraryVersion != "" && !matchVersion(u.LibraryVersion, info.LibraryVersion) {
			return 0, "", fmt.Errorf("pkcs11: module %s is not the library the URI names (%s %s %d.%d)", module,
				trim(info.ManufacturerID), trim(info.LibraryDescription), info.LibraryVersion.Major, info.LibraryVersion.Minor)
		}
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, "", fmt.Errorf("pkcs11: couldn't list slots of %s: %w", module, err)
	}
	var matches []uint
	var labels, present []string
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil {
			continue
		}
		present = append(present, strconv.Quote(trim(ti.Label)))
		if u.HasSlotID && uint64(slot) != u.SlotID ||
			!matchAttr(u.Token, ti.Label) || !matchAttr(u.Manufacturer, ti.ManufacturerID) ||
			!matchAttr(u.Model, ti.Model) || !matchAttr(u.Serial, ti.SerialNumber) {
			continue
		}
		if u.SlotDescription != "" || u.SlotManufacturer != "" {
			si, err := p.GetSlotInfo(slot)
			if err != nil || !matchAttr(u.SlotDescription, si.SlotDescription) || !matchAttr(u.SlotManufacturer, si.ManufacturerID) {
				continue
			}
		}
		matches = append(matches, slot)
		labels = append(labels, trim(ti.Label))
	}
	switch len(matches) {
	case 0:
		sort.Strings(present)
		return 0, "", fmt.Errorf("pkcs11: no token matches %s (tokens present: %s)", u, orNone(present))
	case 1:
		return matches[0], labels[0], nil
	}
	return 0, "", fmt.Errorf("pkcs11: %d tokens match %s; add token=, serial= or slot-id= to choose one", len(matches), u)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func matchAttr(want, have string) bool { return want == "" || want == trim(have) }

// matchVersion compares "M" or "M.N" with a CK_VERSION; "M" means M.0.
func matchVersion(want string, v pkcs11.Version) bool {
	major, minor, _ := strings.Cut(want, ".")
	if minor == "" {
		minor = "0"
	}
	return major == strconv.Itoa(int(v.Major)) && minor == strconv.Itoa(int(v.Minor))
}

func openPKCS11(u *PKCS11URI) (*PKCS11Signer, error) {
	return withToken(u, func(t *tokenCtx) (crypto.Signer, *PKCS11URI, error) {
		keys, err := t.ctx.FindKeyPairs(u.ID, []byte(u.Object))
		if err != nil {
			if strings.Contains(err.Error(), "unsupported key type") {
				return nil, nil, fmt.Errorf("%w: the key %s in token %q is of a type crypto11 cannot sign with (only ECDSA and RSA; no Ed25519)", ErrUnsupportedKey, u.describe(), t.label)
			}
			return nil, nil, fmt.Errorf("pkcs11: couldn't search token %q: %w", t.label, err)
		}
		switch len(keys) {
		case 0:
			return nil, nil, fmt.Errorf("pkcs11: %w: token %q has no key pair with %s", ErrKeyNotFound, t.label, u.describe())
		case 1:
		default:
			return nil, nil, fmt.Errorf("pkcs11: %d key pairs in token %q match %s; add id= to choose one", len(keys), t.label, u.describe())
		}
		if err := checkPublicKey(keys[0].Public()); err != nil {
			return nil, nil, fmt.Errorf("pkcs11: %s: %w", u.describe(), err)
		}
		// Name the key as the token does: the URI a signer reports then
		// carries both its label and its id.
		named := *u
		if attrs, err := t.ctx.GetAttributes(keys[0], []crypto11.AttributeType{crypto11.CkaId, crypto11.CkaLabel}); err == nil {
			if a := attrs[crypto11.CkaId]; a != nil && len(a.Value) > 0 {
				named.ID = a.Value
			}
			if a := attrs[crypto11.CkaLabel]; a != nil && len(a.Value) > 0 && utf8.Valid(a.Value) {
				named.Object = string(a.Value)
			}
		}
		return keys[0], &named, nil
	})
}

func generatePKCS11(u *PKCS11URI) (*PKCS11Signer, error) {
	return withToken(u, func(t *tokenCtx) (crypto.Signer, *PKCS11URI, error) {
		// Refuse when any private key or key pair has this label or this id.
		// (Another process could create one between this check and the
		// generation; tokens have no exclusive create.)
		for _, q := range []struct {
			id    []byte
			label []byte
			what  string
		}{{nil, []byte(u.Object), "object=" + pctEncode(u.Object, false)}, {u.ID, nil, "id=" + pctEncode(string(u.ID), true)}} {
			if len(q.id) == 0 && len(q.label) == 0 {
				continue
			}
			privs, err := t.ctx.FindPrivateKeys(q.id, q.label)
			if err != nil {
				return nil, nil, fmt.Errorf("pkcs11: couldn't search token %q: %w", t.label, err)
			}
			if len(privs) > 0 {
				return nil, nil, fmt.Errorf("pkcs11: token %q already holds a key with %s: %w (custody never replaces a key in a token; choose another label, or delete the old key with the token's own tools)",
					t.label, q.what, os.ErrExist)
			}
		}
		id := u.ID
		if len(id) == 0 {
			id = make([]byte, 16)
			if _, err := rand.Read(id); err != nil {
				return nil, nil, err
			}
		}
		var public crypto11.AttributeSet
		var err error
		if u.Object != "" {
			public, err = crypto11.NewAttributeSetWithIDAndLabel(id, []byte(u.Object))
		} else {
			public, err = crypto11.NewAttributeSetWithID(id)
		}
		if err != nil {
			return nil, nil, err
		}
		private := public.Copy()
		if err := private.Set(crypto11.CkaPrivate, true); err != nil {
			return nil, nil, err
		}
		k, err := t.ctx.GenerateECDSAKeyPairWithAttributes(public, private, elliptic.P256())
		if err != nil {
			return nil, nil, fmt.Errorf("pkcs11: couldn't generate a key in token %q: %w", t.label, err)
		}
		gu := *u
		gu.ID = id
		return k, &gu, nil
	})
}
