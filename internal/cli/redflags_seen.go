package cli

import (
	"context"
	"crypto"
	"io"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/redflags"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// A server signs red flags statements (attest.PredicateRedFlags) with its
// audit key. Commands that verify evidence against the keys a person
// gives (policy check's --key, verify's --key) do not count a statement
// under a key they were not given, and never will here: the decision and
// the verdict stay what the given trust says. What this file changes is
// how such a statement is shown: as the server's red flags, verified
// against the server's audit key, listed apart from bundles that were
// rejected, instead of as a rejected bundle or "other evidence".

// redFlagsSeen is a red flags statement that a command did not count;
// verify --pack shows those of a pack the same way.
type redFlagsSeen = pack.RedFlagsSeen

// auditTrust verifies red flags statements against a server's audit key.
type auditTrust struct {
	tm   root.TrustedMaterial // nil: no audit key is known
	from string               // where its keys came from
	why  string               // when tm is nil: why, and how to give one
}

// serverAuditTrust finds the audit key to verify a server's red flags
// with, and the logs and TSAs that prove them. With a server (cl), the
// audit key it serves: named as from the custody trust root at trustRoot
// when that lists it with role packer (as packs the server signs need;
// the key's window applies), else as from the server, not pinned (a
// statement it verifies is then the server's word about itself); the
// server's trusted root holds its log and TSA. Without one, the trust
// root's packer keys, with its logs and TSAs. Nothing found is not an
// error: the statements are then shown unverified, with why.
func serverAuditTrust(ctx context.Context, trustRoot string, cl *client.Client) auditTrust {
	var tms root.TrustedMaterialCollection
	var served crypto.PublicKey
	if cl != nil {
		var err error
		if served, tms, err = servedAuditKey(ctx, cl); err != nil {
			return auditTrust{why: "couldn't get the server's audit key: " + oneLine(err.Error())}
		}
	}
	var packers trust.Root
	if trustRoot != "" {
		d, err := readRoot(trustRoot)
		if err != nil {
			return auditTrust{why: "couldn't read the trust root: " + oneLine(err.Error())}
		}
		packers = trust.Root{Tlogs: d.Root.Tlogs, TSAs: d.Root.TSAs}
		for _, k := range d.Root.Keys {
			if k.Role == trust.RolePacker && (served == nil || samePublic(k.PublicKey, served)) {
				k.Role = trust.RoleBuilder // as the signer of red flags only, here
				packers.Keys = append(packers.Keys, k)
			}
		}
	}
	if len(packers.Keys) > 0 {
		tm, err := packers.TrustedMaterial()
		if err != nil {
			return auditTrust{why: "the trust root's packer keys: " + oneLine(err.Error())}
		}
		if served != nil {
			tms = tms[:1] // the server's log and TSA; the key as the trust root has it
		}
		return auditTrust{tm: append(tms, tm), from: "the trust root (role packer)"}
	}
	if served != nil {
		return auditTrust{tm: tms, from: "the server (not pinned)"}
	}
	return auditTrust{why: "no audit key to verify it with: give --server, or --trust-root listing the server's audit key (role packer)"}
}

// servedAuditKey returns the audit key the server at cl serves, and trust
// material of the server's trusted root and that key, in this order.
func servedAuditKey(ctx context.Context, cl *client.Client) (crypto.PublicKey, root.TrustedMaterialCollection, error) {
	pemBytes, err := cl.PublicKey(ctx, api.AuditKeyName)
	if err != nil {
		return nil, nil, err
	}
	pub, err := signer.ParsePublicKey(pemBytes)
	if err != nil {
		return nil, nil, err
	}
	b, err := cl.TrustedRoot(ctx)
	if err != nil {
		return nil, nil, err
	}
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		return nil, nil, err
	}
	km, err := gate.KeyMaterial(pub)
	if err != nil {
		return nil, nil, err
	}
	return pub, root.TrustedMaterialCollection{tr, km}, nil
}

// samePublic reports whether a and b are the same public key.
func samePublic(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// see verifies the red flags bundle b about art ("sha256:HEX"). notCounted
// says why the command did not count it (used when it verifies).
func (a auditTrust) see(ctx context.Context, b gate.Bundle, art, notCounted string) redFlagsSeen {
	out := redFlagsSeen{Bundle: b.Name, Flags: []string{}}
	if a.tm == nil {
		out.Reason = a.why
		return out
	}
	st, err := redflags.Verify(ctx, b.JSON, b.Name, art, a.tm)
	if err != nil {
		out.Reason = "does not verify with the server's audit key from " + a.from + ": " + oneLine(err.Error())
		return out
	}
	out.Verified, out.KeyFrom, out.Reason = true, a.from, notCounted
	out.AuditKey = keyid.Display(st.Signer)
	for _, f := range st.RedFlags.Flags {
		out.Flags = append(out.Flags, f.Kind)
	}
	return out
}

// isRedFlags reports whether a bundle claims to be a red flags statement
// (read unverified: see verifies it).
func isRedFlags(b gate.Bundle) bool {
	return len(gate.OfPredicateType([]gate.Bundle{b}, attest.PredicateRedFlags)) == 1
}

// printRedFlagsSeen prints the red flags statements a command did not
// count, apart from everything else, each on one line.
func printRedFlagsSeen(w io.Writer, indent string, seen []redFlagsSeen) {
	pack.WriteRedFlagsSeen(w, indent, seen)
}
