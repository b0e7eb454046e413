// Package audit reads a custody server's audit trail and judges it: the
// server's audit entries and the signed bundles that are actions
// themselves, each verified against the key the transparency log recorded
// for it (client.AuditTrail), optionally proven complete by walking the
// whole log (client.CompleteAuditTrail, https://c2sp.org/tlog-tiles), and
// each signer named from a custody trust root (client.NameSigners).
//
// Check is what `custody audit` runs; a dashboard or a monitor can run it
// the same way.
package audit

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/trust"
)

// Options select the trail and say what to check.
type Options struct {
	// Query selects entries; it must be empty with Complete.
	Query client.AuditQuery
	// Complete reads the whole trail and proves the index left no entry
	// out that the audit key signed in the log.
	Complete bool
	// AuditKey is the server's audit key the audit entries must be signed
	// with (required; pin it rather than trust the server's answer).
	AuditKey crypto.PublicKey
	// TrustRoot, when set, names every signer by its role and holder, and
	// Report.Untrusted lists those it does not trust.
	TrustRoot *trust.Document
}

// Report is the trail as read and checked. The trail fails when
// Incomplete is set or Failed is not empty; Untrusted fails it only for
// a caller that requires trusted signers.
type Report struct {
	Trail []*client.AuditEntry
	// Walk is what a complete check read from the log (nil otherwise).
	Walk *client.LogWalk
	// Incomplete, when set, is the *client.IncompleteError that says which
	// entries the log holds and the index left out.
	Incomplete error
	// Failed describes each entry that failed verification. Bundles that
	// were pushed without being logged are unverified, not failed.
	Failed []string
	// Untrusted describes each signature by a key TrustRoot does not hold,
	// or had revoked before the entry.
	Untrusted []string
}

// ErrFiltered is returned for a complete check with a query: completeness
// is a property of the whole trail.
var ErrFiltered = errors.New("a complete audit trail check takes no query")

// Check reads the trail from the server and checks it. Errors are the
// client's (client.ErrUnreachable, *client.APIError, client.ErrIncomplete
// when the log does not match its checkpoint, tlog.ErrInconsistent); an
// index that merely leaves entries out is Report.Incomplete, not an
// error, so the trail read can still be shown.
func Check(ctx context.Context, cl *client.Client, o Options) (*Report, error) {
	rep := &Report{}
	var err error
	switch {
	case o.Complete && o.Query != (client.AuditQuery{}):
		return nil, ErrFiltered
	case o.Complete:
		rep.Trail, rep.Walk, err = cl.CompleteAuditTrail(ctx, o.AuditKey)
		var ie *client.IncompleteError
		if errors.As(err, &ie) {
			rep.Incomplete, err = err, nil
		}
	default:
		rep.Trail, err = cl.AuditTrail(ctx, o.Query, o.AuditKey)
	}
	if err != nil {
		return nil, err
	}
	if o.TrustRoot != nil {
		client.NameSigners(rep.Trail, o.TrustRoot, o.AuditKey)
	}
	for _, e := range rep.Trail {
		if !e.Verified && !e.Pushed {
			rep.Failed = append(rep.Failed, fmt.Sprintf("entry %d (%s, log index %d): %s", e.EvidenceID, e.Action, e.LogIndex, e.Problem))
		}
		for _, sg := range e.Signers {
			if sg.Problem != "" {
				rep.Untrusted = append(rep.Untrusted, fmt.Sprintf("entry %d (%s, log index %d) signer %s: %s",
					e.EvidenceID, e.Action, e.LogIndex, ShortKeyID(sg.KeyID), sg.Problem))
			}
		}
	}
	return rep, nil
}

// ShortKeyID is the first 16 characters of a key ID, as the trail is
// printed.
func ShortKeyID(id string) string {
	id = keyid.Display(id)
	return id[:min(16, len(id))]
}
