package pack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/trust"
)

// Check is a device's whole check of a pack: Open, the rollback check
// against st (checkpoints, trust root version, the environment's policy
// version), remembering what the pack proved in st, then Decide with
// extra trust (may be nil). A pack refused before Decide changes nothing
// in st.
func Check(ctx context.Context, b []byte, o Options, st *State, extra root.TrustedMaterial) (*Result, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	op, err := Open(ctx, b, o)
	if err != nil {
		return nil, err
	}
	v := view{cps: op.Checkpoints, trustRoot: op.Root.Version, env: op.Manifest.Environment, policy: op.Policy.Policy().Version}
	if err := st.check(v); err != nil {
		return nil, err
	}
	if err := st.record(v); err != nil {
		return nil, err
	}
	return op.Decide(ctx, extra, o.Now)
}

// WriteText writes the result as custody policy check prints a decision
// (the verdict line, FAIL with fix, PASS, IGNORED bundles), then the
// quarantine and what the pack was checked against.
func (r *Result) WriteText(w io.Writer) {
	WriteDecision(w, r.Decision)
	d := r.Decision
	for _, rj := range r.Rejected {
		fmt.Fprintf(w, "  IGNORED bundle/%04d: %s\n", rj.Index, rj.Reason)
	}
	WriteRedFlagsSeen(w, "  ", r.RedFlags)
	switch {
	case r.Quarantined != "":
		fmt.Fprintf(w, "QUARANTINED: incident %s quarantined %s\n", r.Quarantined, d.Artifact)
	case !r.QuarantineChecked:
		fmt.Fprintf(w, "REFUSED: the packer consulted no incident ledger: nothing says %s is not quarantined\n", d.Artifact)
	}
	var cps []string
	for _, c := range r.Checkpoints {
		w := ""
		if len(c.Witnesses) > 0 {
			w = ", witnessed by " + strings.Join(c.Witnesses, ", ")
		}
		cps = append(cps, fmt.Sprintf("%s size %d (%d cosignature(s)%s)", c.Origin, c.Size, c.Cosignatures, w))
	}
	fmt.Fprintf(w, "pack made %s under trust root version %d; checkpoint %s\n", r.Created.Format("2006-01-02T15:04:05Z07:00"), r.TrustRoot, strings.Join(cps, ", "))
}

// WriteDecision writes a decision as custody policy check prints it: the
// verdict line, each failure with its fix, each requirement that passed,
// each one that held only because of an approval or an exception.
func WriteDecision(w io.Writer, d *policy.Decision) {
	verdict := "ALLOWED"
	if !d.Allowed {
		verdict = "DENIED"
	}
	fmt.Fprintf(w, "%s: %s in environment %s (policy %s)\n", verdict, d.Artifact, d.Environment, d.PolicyDigest)
	for _, fl := range d.Failures {
		fmt.Fprintf(w, "  FAIL  %-24s %s\n", fl.Requirement, fl.Message)
		fmt.Fprintf(w, "        %-24s fix: %s\n", "", fl.Fix)
	}
	for _, ps := range d.Passed {
		fmt.Fprintf(w, "  PASS  %s\n", ps)
	}
	for _, c := range d.Cleared {
		fmt.Fprintf(w, "  CLEARED %s by %s: %s\n", c.Requirement, c.By, c.Detail)
	}
}

// Device is a device's configuration for checking a pack from files.
type Device struct {
	// PackPath is the pack file.
	PackPath string
	// Options: Artifact ("sha256:HEX"), Environment, PackKeys, Now; Anchor
	// is read from TrustRootPath when nil.
	Options
	// TrustRootPath is the custody trust root the device trusts, signed
	// by its own admins (trust.VerifyStored).
	TrustRootPath string
	// StatePath is the device's state file (DefaultStatePath when empty).
	StatePath string
	// Extra is trust material besides the pack's (the device's --key and
	// --trusted-root); may be nil.
	Extra root.TrustedMaterial
}

// Verify reads the pack, the trust root and the state, and runs Check.
func (d *Device) Verify(ctx context.Context) (*Result, error) {
	b, err := fsutil.ReadFileLimited(d.PackPath, MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: couldn't read pack: %v", ErrMalformed, err)
	}
	if d.Anchor == nil {
		if d.TrustRootPath == "" {
			return nil, errors.New("no trust root: the device's custody trust root (--trust-root) anchors the pack")
		}
		rb, err := fsutil.ReadFileLimited(d.TrustRootPath, trust.MaxDocumentBytes)
		if err != nil {
			return nil, fmt.Errorf("couldn't read trust root: %w", err)
		}
		if d.Anchor, err = trust.ParseDocument(rb); err != nil {
			return nil, fmt.Errorf("trust root %s: %w", d.TrustRootPath, err)
		}
		// The anchor trusts no earlier version: its own admins sign it.
		// Its expiry is left to Open (a pack's newer versions may follow).
		if err := trust.VerifyStored(d.Anchor); err != nil {
			return nil, fmt.Errorf("trust root %s: %w", d.TrustRootPath, err)
		}
	}
	path := d.StatePath
	if path == "" {
		if path, err = DefaultStatePath(); err != nil {
			return nil, err
		}
	}
	st, err := LoadState(path)
	if err != nil {
		return nil, err
	}
	return Check(ctx, b, d.Options, st, d.Extra)
}
