package dashboard

import (
	"slices"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/policy"
)

// redFlagsView is one verified red flags statement about the artifact, as
// the artifact page shows it: the flags, and the dependency diff since the
// last release as added, removed and changed lines.
type redFlagsView struct {
	EvidenceID int64
	// Counted: signed by one of Config.RedFlagSigners (the server's audit
	// key), so policies with a redFlags section act on it. Others are
	// shown as not counted.
	Counted    bool
	Signer     string
	ComputedBy string
	ComputedAt time.Time
	Lineage    attest.RedFlagsLineage
	Flags      []attest.RedFlag
	Diff       []diffLine
	Notes      []string
}

// diffLine is one line of a dependency diff: Sign is "+", "-" or "~".
type diffLine struct {
	Sign, Class, Name, From, To string
}

// redFlagSigners returns the key IDs whose red flags count (nil: none).
func (d *Dashboard) redFlagSigners() []string {
	if d.cfg.RedFlagSigners == nil {
		return nil
	}
	return d.cfg.RedFlagSigners()
}

// countedRedFlag reports whether a red flags statement's signer is one of
// signers.
func countedRedFlag(r policy.RedFlagReport, signers []string) bool {
	return r.Signer.KeyID != "" && slices.Contains(signers, r.Signer.KeyID)
}

// redFlagViews lays out the verified red flags statements, counted ones
// first, and notes each on its evidence row.
func (d *Dashboard) redFlagViews(reports []policy.RedFlagReport, rb *rowBuilder) []redFlagsView {
	signers := d.redFlagSigners()
	var out []redFlagsView
	for _, r := range reports {
		v := redFlagsView{Counted: countedRedFlag(r, signers), Signer: r.Signer.String(), ComputedBy: r.ComputedBy, ComputedAt: r.ComputedAt,
			Lineage: r.Lineage, Flags: r.Flags, Notes: r.Notes}
		if row := rb.row(r.Signature); row != nil {
			v.EvidenceID = row.Record.ID
			note := "red flags by " + r.ComputedBy + ": "
			if len(r.Flags) == 0 {
				note += "none"
			}
			for i, f := range r.Flags {
				if i > 0 {
					note += ", "
				}
				note += f.Kind
			}
			if !v.Counted {
				note += " (not counted: not signed by the server's audit key)"
			}
			row.Detail = append(row.Detail, note)
		}
		for _, c := range r.Dependencies {
			l := diffLine{Name: c.Name, From: c.From, To: c.To}
			switch c.Change {
			case "added":
				l.Sign, l.Class = "+", "add"
			case "removed":
				l.Sign, l.Class = "-", "del"
			default:
				l.Sign, l.Class = "~", "chg"
			}
			v.Diff = append(v.Diff, l)
		}
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b redFlagsView) int {
		switch {
		case a.Counted == b.Counted:
			return 0
		case a.Counted:
			return -1
		}
		return 1
	})
	return out
}

// envRedFlags is what the environments page says of the running
// artifact's red flags.
type envRedFlags struct {
	// Checked: a counted statement is about it.
	Checked bool
	Flags   []attest.RedFlag
}

// envRedFlagsOf collects the flags of the counted statements in ev.
func (d *Dashboard) envRedFlagsOf(ev *policy.Evidence) *envRedFlags {
	signers := d.redFlagSigners()
	out := &envRedFlags{}
	seen := map[attest.RedFlag]bool{}
	for _, r := range ev.RedFlagReports {
		if !countedRedFlag(r, signers) {
			continue
		}
		out.Checked = true
		for _, f := range r.Flags {
			if !seen[f] {
				seen[f] = true
				out.Flags = append(out.Flags, f)
			}
		}
	}
	return out
}
