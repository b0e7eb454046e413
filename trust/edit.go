package trust

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Editing a Document. Every edit method works on a copy and changes d only
// when the result is valid. An edit of a document whose own admins' threshold
// of signatures is met (a finished version) starts the next version; an edit
// of a draft (fewer signatures) stays in the draft's version, so that the
// several edits of one change make one version, not a gap. Either way the
// edit drops every signature: the document must be signed again.

// AddKey adds k. k needs a Role; an empty ID becomes KeyID(k.PublicKey).
func (d *Document) AddKey(k Key) error {
	return d.edit(func(n *Document) error {
		if k.ID == "" && k.PublicKey != nil {
			id, err := KeyID(k.PublicKey)
			if err != nil {
				return err
			}
			k.ID = id
		}
		n.Root.Keys = append(n.Root.Keys, k)
		return nil
	})
}

// RotateKey ends the window of the key ref names (see FindKey) at at and
// adds newKey with a window starting at at, in the old key's role (and with
// its identity, unless newKey has one). Signatures that a timestamp or log
// entry places inside the old window stay valid.
func (d *Document) RotateKey(ref string, newKey Key, at time.Time) error {
	if at.IsZero() {
		return errors.New("rotation time is missing")
	}
	return d.edit(func(n *Document) error {
		old, err := n.Root.FindKey(ref)
		if err != nil {
			return err
		}
		if !old.Window.End.IsZero() && old.Window.End.Before(at) {
			return fmt.Errorf("key %s already ended at %s", short(old.ID), formatTime(old.Window.End))
		}
		if !old.Window.Start.IsZero() && at.Before(old.Window.Start) {
			return fmt.Errorf("rotation at %s is before key %s starts (%s)", formatTime(at), short(old.ID), formatTime(old.Window.Start))
		}
		old.Window.End = at
		newKey.Window = Window{Start: at}
		if newKey.Role == "" {
			newKey.Role = old.Role
		}
		if newKey.Identity == "" {
			newKey.Identity = old.Identity
		}
		if newKey.ID == "" && newKey.PublicKey != nil {
			id, err := KeyID(newKey.PublicKey)
			if err != nil {
				return err
			}
			newKey.ID = id
		}
		n.Root.Keys = append(n.Root.Keys, newKey)
		return nil
	})
}

// RevokeKey marks the key ref names (see FindKey) compromised since since.
// An earlier compromise time already recorded is kept.
func (d *Document) RevokeKey(ref string, since time.Time) error {
	if since.IsZero() {
		return errors.New("compromise time is missing")
	}
	return d.edit(func(n *Document) error {
		k, err := n.Root.FindKey(ref)
		if err != nil {
			return err
		}
		if k.CompromisedSince.IsZero() || since.Before(k.CompromisedSince) {
			k.CompromisedSince = since
		}
		return nil
	})
}

// SetThreshold sets how many admins must sign.
func (d *Document) SetThreshold(k int) error {
	return d.edit(func(n *Document) error { n.Threshold = k; return nil })
}

// SetWitnessThreshold sets how many distinct witnesses must cosign a
// checkpoint (Document.WitnessThreshold); 0 removes the setting, back to
// the default.
func (d *Document) SetWitnessThreshold(k int) error {
	return d.edit(func(n *Document) error { n.WitnessThreshold = k; return nil })
}

// SetExpires sets the expiry.
func (d *Document) SetExpires(t time.Time) error {
	return d.edit(func(n *Document) error { n.Expires = t; return nil })
}

// SetAuthorities replaces the transparency logs, CT logs, timestamp
// authorities and certificate authorities with those of r (as read by
// LoadTrustedRoot); keys stay.
func (d *Document) SetAuthorities(r *Root) error {
	return d.edit(func(n *Document) error {
		n.Root.Tlogs = slices.Clone(r.Tlogs)
		n.Root.CTLogs = slices.Clone(r.CTLogs)
		n.Root.TSAs = slices.Clone(r.TSAs)
		n.Root.CertificateAuthorities = slices.Clone(r.CertificateAuthorities)
		return nil
	})
}

func (d *Document) edit(change func(*Document) error) error {
	n := d.clone()
	if err := change(n); err != nil {
		return err
	}
	if d.finished() {
		n.Version = d.Version + 1
	}
	n.Signatures = nil
	if err := n.Validate(); err != nil {
		return err
	}
	*d = *n
	return nil
}

// finished reports whether d's own admins' threshold of valid signatures is
// met, whatever the admin keys' windows.
func (d *Document) finished() bool {
	if len(d.Signatures) == 0 {
		return false
	}
	t, err := d.countSignatures(d, time.Time{}, false)
	return err == nil && t.Met()
}

func (d *Document) clone() *Document {
	n := *d
	n.Root.Tlogs = slices.Clone(d.Root.Tlogs)
	n.Root.CTLogs = slices.Clone(d.Root.CTLogs)
	n.Root.TSAs = slices.Clone(d.Root.TSAs)
	n.Root.CertificateAuthorities = slices.Clone(d.Root.CertificateAuthorities)
	n.Root.Keys = slices.Clone(d.Root.Keys)
	n.Signatures = slices.Clone(d.Signatures)
	return &n
}

// FindKey returns the key that ref names: its ID (the bundle hint, standard
// base64 of the public key's SHA-256), the same digest in hex (as
// signer.KeyID prints it), or a unique prefix of either of at least 6
// characters.
func (r *Root) FindKey(ref string) (*Key, error) {
	ref = strings.TrimSpace(ref)
	if len(ref) < 6 {
		return nil, fmt.Errorf("key reference %q is too short: give at least 6 characters of its ID", ref)
	}
	var found []*Key
	for i := range r.Keys {
		k := &r.Keys[i]
		id, err := k.keyID()
		if err != nil {
			continue
		}
		names := []string{id}
		if fp, err := KeyID(k.PublicKey); err == nil {
			names = append(names, fp)
			if raw, err := base64.StdEncoding.DecodeString(fp); err == nil {
				names = append(names, hex.EncodeToString(raw))
			}
		}
		for _, n := range names {
			if n == ref {
				return k, nil
			}
			if strings.HasPrefix(n, ref) {
				found = append(found, k)
				break
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no key %q in the trust root", ref)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("key reference %q is ambiguous: %d keys match", ref, len(found))
}
