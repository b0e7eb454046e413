package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

func newAuditCmd(s *streams) *cobra.Command {
	var server, action, actor, artifact, since, until, auditKey, rootPath string
	var jsonOut, requireTrusted, complete bool
	c := &cobra.Command{
		Use:   "audit [--server URL] [--action A] [--actor X] [--artifact sha256:HEX] [--since T] [--until T] [--complete] [--audit-key audit.pub] [--trust-root root.json [--require-trusted]] [--json]",
		Short: "List the server's audit trail — who did what, when — and verify every entry",
		Long: "Lists the server's audit entries (deployment records, incident steps, policy and trust root changes)\n" +
			"and the signed bundles that are actions (sign, approve, decide), verifying each entry's signature and\n" +
			"log inclusion. --complete also proves the index left no audit entry out (the whole trail only).\n" +
			"Exit 1 if any entry fails or the index hides one. More: docs/audit.md.",
		Example: "  custody audit --server $URL --action policy.changed --since 7d\n" +
			"  custody audit --server $URL --action deployment --artifact sha256:HEX --json\n" +
			"  custody audit --server $URL --trust-root root.json --require-trusted\n" +
			"  custody audit --server $URL --audit-key audit.pub --complete",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if complete && (action != "" || actor != "" || artifact != "" || since != "" || until != "") {
				return usageErr(errors.New("--complete checks the whole trail; it does not combine with --action, --actor, --artifact, --since or --until"),
					"run 'custody audit --complete' first, then filter")
			}
			o, err := auditOptions(action, actor, artifact, since, until, rootPath, requireTrusted)
			if err != nil {
				return err
			}
			o.Complete = complete
			cl, err := newClientTrusting(serverURL(server), rootPath)
			if err != nil {
				return err
			}
			if o.AuditKey, err = auditKeyFor(c.Context(), s, cl, auditKey); err != nil {
				return err
			}
			rep, err := audit.Check(c.Context(), cl, o)
			switch {
			case err != nil && complete && errors.Is(err, client.ErrIncomplete):
				return failErr(fmt.Errorf("walk the server's log: %w", err), "the server's log does not match its checkpoint; do not trust its audit trail")
			case err != nil && complete:
				return remoteErr(err, "walk the server's log")
			case err != nil:
				return remoteErr(err, "read the audit trail")
			}
			if err := printAuditReport(s, rep, jsonOut); err != nil {
				return err
			}
			return auditVerdict(rep, o.TrustRoot, requireTrusted)
		},
	}
	fl := c.Flags()
	fl.StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	fl.StringVar(&action, "action", "", "only this action (policy.changed, deployment.deployed, deployment, sign, approve, decide …)")
	fl.StringVar(&actor, "actor", "", "only entries by this actor, token (role:name), signer key ID or identity")
	fl.StringVar(&artifact, "artifact", "", "only entries about this digest sha256:HEX")
	fl.StringVar(&since, "since", "", "only entries from this time on (RFC 3339, date, or age like 7d)")
	fl.StringVar(&until, "until", "", "only entries before this time")
	fl.StringVar(&auditKey, "audit-key", "", "the server's audit public key (PEM) to pin (default: fetched from the server)")
	fl.StringVar(&rootPath, "trust-root", "", "custody trust root naming each signer key's role and holder")
	fl.BoolVar(&requireTrusted, "require-trusted", false, "fail (exit 1) when a signer is not in --trust-root or was revoked before the entry")
	fl.BoolVar(&complete, "complete", false, "also walk the whole log and fail if the index left out an entry the audit key signed")
	fl.BoolVar(&jsonOut, "json", false, "print as JSON")
	return c
}

// auditOptions reads the query and the trust root from the flags.
func auditOptions(action, actor, artifact, since, until, rootPath string, requireTrusted bool) (audit.Options, error) {
	if id, err := keyid.Parse(actor); err == nil {
		actor = id.String() // a key ID in either form names the signer
	}
	q := client.AuditQuery{Action: action, Actor: actor}
	if artifact != "" {
		d, err := digest.Parse(artifact)
		if err != nil || d.Alg != "sha256" {
			return audit.Options{}, usageErr(fmt.Errorf("--artifact %q is not sha256:HEX", artifact), "")
		}
		q.Artifact = d.String()
	}
	var err error
	var root *trust.Document
	switch {
	case rootPath != "":
		if root, err = readRoot(rootPath); err != nil {
			return audit.Options{}, err
		}
		if _, err := acceptRoot(root, time.Now()); err != nil {
			return audit.Options{}, err
		}
	case requireTrusted:
		return audit.Options{}, usageErr(errors.New("--require-trusted needs --trust-root root.json"), "")
	}
	if q.Since, err = parseTimeFlag("--since", since); err != nil {
		return audit.Options{}, err
	}
	if q.Until, err = parseTimeFlag("--until", until); err != nil {
		return audit.Options{}, err
	}
	return audit.Options{Query: q, TrustRoot: root}, nil
}

// printAuditReport prints the trail and, after a complete check, what the
// log walk found (to stderr with --json).
func printAuditReport(s *streams, rep *audit.Report, jsonOut bool) error {
	if jsonOut {
		trail := rep.Trail
		if trail == nil {
			trail = []*client.AuditEntry{}
		}
		if err := writeJSON(s.out, trail); err != nil {
			return err
		}
	} else {
		printAudit(s, rep.Trail)
	}
	walk := rep.Walk
	if walk == nil {
		return nil
	}
	w := s.out
	if jsonOut {
		w = s.err
	}
	switch {
	case rep.Incomplete != nil:
		fmt.Fprintf(w, "log walked: %d entries, %d audit entries, NOT all in the trail\n", walk.Size, len(walk.Audit))
	case len(walk.Copies) > 0:
		fmt.Fprintf(w, "log walked: %d entries, %d audit entries, all in the trail (%d logged again)\n", walk.Size, len(walk.Audit), len(walk.Copies))
	default:
		fmt.Fprintf(w, "log walked: %d entries, %d audit entries, all in the trail\n", walk.Size, len(walk.Audit))
	}
	return nil
}

// auditVerdict is the exit status of custody audit: 1 when the index
// hides entries, an entry failed, or (with --require-trusted) a signer is
// not trusted.
func auditVerdict(rep *audit.Report, root *trust.Document, requireTrusted bool) error {
	switch {
	case rep.Incomplete != nil:
		return failErr(rep.Incomplete, "the server's index answers leave out entries its log holds; do not trust its audit trail")
	case len(rep.Failed) > 0:
		return failErr(fmt.Errorf("%d of %d audit trail entries failed verification: %s", len(rep.Failed), len(rep.Trail), strings.Join(rep.Failed, "; ")),
			"do not trust these entries; find out how they got into the index")
	case requireTrusted && len(rep.Untrusted) > 0:
		return failErr(fmt.Errorf("%d signature(s) by keys trust root version %d does not trust: %s", len(rep.Untrusted), root.Version, strings.Join(rep.Untrusted, "; ")),
			"find out who holds these keys; if they should be trusted, add them with 'custody trust add-key' and push the new version")
	}
	return nil
}

// auditKeyFor returns the audit key to verify audit entries with: the
// pinned --audit-key, which the server's must equal, or the server's.
func auditKeyFor(ctx context.Context, s *streams, cl *client.Client, pinned string) (crypto.PublicKey, error) {
	b, err := cl.PublicKey(ctx, api.AuditKeyName)
	if err != nil {
		return nil, remoteErr(err, "fetch the audit key")
	}
	served, err := signer.ParsePublicKey(b)
	if err != nil {
		return nil, failErr(fmt.Errorf("the server's audit key is malformed: %w", err), "")
	}
	if pinned == "" {
		fmt.Fprintf(s.err, "custody: audit key %s fetched from the server; pin it with --audit-key\n", signer.KeyID(served))
		return served, nil
	}
	pub, err := loadPublicKey(pinned)
	if err != nil {
		return nil, err
	}
	d1, err1 := x509.MarshalPKIXPublicKey(pub)
	d2, err2 := x509.MarshalPKIXPublicKey(served)
	if err := errors.Join(err1, err2); err != nil {
		return nil, usageErr(err, "")
	}
	if string(d1) != string(d2) {
		return nil, failErr(fmt.Errorf("the server's audit key %s is not the pinned %s", signer.KeyID(served), signer.KeyID(pub)),
			"the server's audit key changed: find out why before trusting its audit trail")
	}
	return pub, nil
}

func printAudit(s *streams, trail []*client.AuditEntry) {
	for _, e := range trail {
		who := e.Actor
		switch {
		case e.Identity != "":
			who = e.Identity + " via " + e.Issuer + " (" + e.Token + ", session " + e.Session + ")"
		case e.Token != "" && who != "":
			who += " (" + e.Token + ")"
		case e.Token != "":
			who = e.Token
		case e.SignerIdentity != "":
			who = e.SignerIdentity
		case e.SignerKeyID != "":
			who = "key " + audit.ShortKeyID(e.SignerKeyID)
		}
		ok := "verified"
		switch {
		case e.Pushed:
			ok = "pushed, unverified (not attributed, not logged)"
		case !e.Verified:
			ok = "FAILED: " + e.Problem
		}
		fmt.Fprintf(s.out, "%s  %-22s %-32s %s  log index %d  %s\n", e.Time.UTC().Format(time.RFC3339), e.Action, orDash(who),
			strings.Join(e.Subjects, ","), e.LogIndex, ok)
		for _, sg := range e.Signers {
			name := sg.Problem
			if sg.Role != "" {
				name = strings.TrimSpace(sg.Role + " " + sg.Identity)
				if sg.Problem != "" {
					name += " (" + sg.Problem + ")"
				}
			}
			fmt.Fprintf(s.out, "    signer %-16s %s\n", audit.ShortKeyID(sg.KeyID), name)
		}
	}
	fmt.Fprintf(s.out, "%d entries\n", len(trail))
}
