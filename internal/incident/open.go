package incident

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/deploy"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/trust"
)

// Server is what Open asks of a custody server (client.Client): its
// evidence index, searched page by page, and its trust root, which must
// learn a revocation.
type Server interface {
	SearchBundles(ctx context.Context, q api.Query) ([]client.Found, error)
	PushTrustRoot(ctx context.Context, d *trust.Document, actor string) (version int, existed bool, err error)
}

// RollbackFunc rolls environment env back to its last good artifact
// (deploy.Gate.Rollback, with the incident's quarantine already in place,
// so no affected artifact is a candidate). It returns a *NotAttemptedError
// when it was not given what that rollback needs.
type RollbackFunc func(ctx context.Context, env string) (*deploy.Result, error)

// NotAttemptedError is returned by a RollbackFunc that cannot try to roll
// an environment back (no policy or deploy command for it); Reason says
// what to run instead. Open records the rollback as NotAttempted.
type NotAttemptedError struct{ Reason string }

func (e *NotAttemptedError) Error() string { return e.Reason }

// Revocation is a custody trust root version in which the caller revoked
// the compromised key (trust.Document.RevokeKey) and which it signed with
// the admin keys it has. Open checks it before recording anything and
// writes it to Path once the rollbacks are done.
type Revocation struct {
	Path     string
	Document *trust.Document
}

// Options are the inputs of Open, resolved by the caller: files read,
// keys loaded, ledger and history opened.
type Options struct {
	// Selector names the compromised key, identity or builder.
	Selector Selector
	// Since is when the compromise began.
	Since time.Time
	// Actor is who opens the incident, as recorded.
	Actor string

	// EvidenceDir is a directory of bundles to search (local mode); with
	// Server set, the server's evidence index is searched instead. Exactly
	// one of them is required.
	EvidenceDir string
	// Server is the custody server (server mode), named ServerURL in the
	// report. It is told the revocation, if there is one.
	Server    Server
	ServerURL string
	// TrustedMaterial proves signing times (RFC 3161 timestamps, log
	// entries). Nil proves none: every matching artifact is affected.
	TrustedMaterial root.TrustedMaterial

	// History is the deployment history of every environment.
	History deploy.History
	// Environments limits the environments looked at; empty means every
	// environment in History.
	Environments []string
	// Ledger records the incident and its quarantine (required).
	Ledger Ledger
	// Rollback rolls back each environment that runs an affected artifact;
	// nil attempts none.
	Rollback RollbackFunc

	// Revocation, when set, is written (and pushed to Server) after the
	// rollbacks.
	Revocation *Revocation
	// ReportDir, when set, gets the report as ID.json and ID.txt.
	ReportDir string
}

// OpError is the error of a step of Open that needed a ledger, the
// history or the server: Op says what could not be done. It is returned
// only from that step on; errors before it leave nothing recorded.
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string { return "couldn't " + e.Op + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// Steps named in OpError.Op whose errors callers may tell apart (the
// others name the ledger: the incident, the quarantine or the report).
const (
	OpSearch       = "search the evidence index"
	OpReadHistory  = "read deployment history"
	OpRecordReport = "record the report"
)

// Open opens an incident: it finds every artifact with evidence from the
// compromised signer not proven to predate Since (Find), where each runs
// (History), quarantines them with one batch of ledger records (the
// deploy gate refuses them from then on), rolls back every environment
// that runs one (Rollback), writes and pushes the Revocation, and records
// the report in the ledger (abridged when it does not fit in one record)
// and in ReportDir.
//
// Bad options and a revocation that cannot be written are refused before
// anything is recorded. Errors of the ledger, the history and the server
// are *OpError. A rollback that fails does not fail Open: the report says
// so (Report.StillRunning). Record is the report's ledger record.
func Open(ctx context.Context, o Options) (*Report, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	tr, err := o.checkRevocation()
	if err != nil {
		return nil, err
	}
	rep, err := o.newReport()
	if err != nil {
		return nil, err
	}
	evs, err := o.gather(ctx, rep)
	if err != nil {
		return nil, err
	}
	rep.Found = Find(evs, o.Selector, o.Since)
	if err := o.locate(ctx, rep); err != nil {
		return nil, err
	}
	if err := o.quarantine(ctx, rep); err != nil {
		return nil, err
	}
	o.rollBack(ctx, rep)
	if err := o.revoke(ctx, rep, tr); err != nil {
		return nil, err
	}
	if err := o.record(ctx, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// StillRunning lists the environments that still run an affected
// artifact: their rollback did not happen.
func (r *Report) StillRunning() []string {
	var still []string
	for _, rb := range r.Rollbacks {
		if rb.Outcome != RolledBack {
			still = append(still, rb.Environment)
		}
	}
	return still
}

func (o *Options) check() error {
	if err := o.Selector.Validate(); err != nil {
		return err
	}
	switch {
	case (o.EvidenceDir == "") == (o.Server == nil):
		return errors.New("incident: give either an evidence directory or a server")
	case o.Ledger == nil, o.History == nil:
		return errors.New("incident: a ledger and a deployment history are required")
	case o.Revocation != nil && o.Selector.KeyID == "":
		return errors.New("incident: a trust root revokes keys: the selector names none")
	}
	return nil
}

// checkRevocation checks the revoked trust root can be written, before
// anything is recorded: a trust root that cannot be, or an admin key that
// could not sign, is bad input and must not leave a half-opened incident.
func (o *Options) checkRevocation() (*TrustRoot, error) {
	rv := o.Revocation
	if rv == nil {
		return nil, nil
	}
	d := rv.Document
	if _, err := d.Marshal(); err != nil {
		return nil, err
	}
	tr := &TrustRoot{Path: rv.Path, Version: d.Version, KeyID: o.Selector.KeyID, Signed: len(d.Signatures), Needed: d.Threshold}
	if tr.Signed >= tr.Needed {
		tr.Note = "signed by the admin threshold; verifiers that trust the previous version accept it"
	} else {
		tr.Note = fmt.Sprintf("needs %d more admin signature(s): custody trust sign --root %s --key ADMIN.key", tr.Needed-tr.Signed, rv.Path)
	}
	return tr, nil
}

func (o *Options) newReport() (*Report, error) {
	openedAt := time.Now().UTC()
	id, err := NewID(openedAt)
	if err != nil {
		return nil, err
	}
	return &Report{ID: id, Selector: o.Selector, CompromisedSince: o.Since.UTC(), OpenedAt: openedAt, Actor: o.Actor,
		Running: []Placement{}, Quarantined: []Quarantined{}, PromotionHalted: []Placement{},
		Rollbacks: []Rollback{}}, nil
}

// gather reads the evidence to search; bundles it cannot read go to
// rep.Unreadable.
func (o *Options) gather(ctx context.Context, rep *Report) ([]*Evidence, error) {
	if o.Server != nil {
		return o.search(ctx, rep)
	}
	bundles, err := gate.ReadDir(o.EvidenceDir)
	if err != nil {
		return nil, err
	}
	var evs []*Evidence
	for _, b := range bundles {
		e, err := FromBundle(b.Name, b.JSON, o.TrustedMaterial, o.Since)
		if err != nil {
			rep.Unreadable = append(rep.Unreadable, Unreadable{Source: b.Name, Reason: err.Error()})
			continue
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// search reads the evidence the server's index holds about the selector,
// fetching the next page while this one is read.
func (o *Options) search(ctx context.Context, rep *Report) ([]*Evidence, error) {
	type page struct {
		found []client.Found
		err   error
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan page, 1)
	go func() {
		defer close(pages)
		q := o.Selector.Query()
		q.Limit = api.MaxLimit
		for {
			found, err := o.Server.SearchBundles(sctx, q)
			select {
			case pages <- page{found, err}:
			case <-sctx.Done():
				return
			}
			if err != nil || len(found) < q.Limit {
				return
			}
			q.AfterID = found[len(found)-1].Evidence.ID
		}
	}()
	var evs []*Evidence
	for p := range pages {
		if p.err != nil {
			return nil, &OpError{Op: OpSearch, Err: p.err}
		}
		// Each bundle was parsed once, by the client (which checked its
		// log entries); FromBundles reads the parsed form.
		es := make([]*api.Evidence, len(p.found))
		parsed := make([]*protobundle.Bundle, len(p.found))
		for i, f := range p.found {
			es[i], parsed[i] = f.Evidence, f.Bundle
		}
		read, unreadable := FromBundles(es, parsed, o.TrustedMaterial, o.Since)
		evs = append(evs, read...)
		rep.Unreadable = append(rep.Unreadable, unreadable...)
	}
	return evs, nil
}

// locate finds where affected artifacts run now: each such environment
// is in rep.Running and rep.PromotionHalted.
func (o *Options) locate(ctx context.Context, rep *Report) error {
	affected := map[string]bool{}
	for _, a := range rep.Found.Affected {
		affected[a.Digest] = true
	}
	recs, err := o.History.List(ctx, "")
	if err != nil {
		return &OpError{Op: OpReadHistory, Err: err}
	}
	envSet := map[string]bool{}
	for _, r := range recs {
		envSet[r.Environment] = true
	}
	if len(o.Environments) > 0 {
		envSet = map[string]bool{}
		for _, e := range o.Environments {
			envSet[e] = true
		}
	}
	var envs []string
	for e := range envSet {
		envs = append(envs, e)
	}
	sort.Strings(envs)
	for _, e := range envs {
		st := deploy.Current(e, recs)
		if st.Running != nil && affected[st.Running.Artifact] {
			p := Placement{Environment: e, Artifact: st.Running.Artifact, Name: st.Running.Name, Since: st.Since}
			rep.Running = append(rep.Running, p)
			rep.PromotionHalted = append(rep.PromotionHalted, p)
		}
	}
	return nil
}

// quarantine records the opening and one quarantine per affected
// artifact in one batch (a server ledger sends it in as few requests as
// fit, each all or none): from these records on, the gate refuses them.
func (o *Options) quarantine(ctx context.Context, rep *Report) error {
	since := o.Since.UTC().Format(time.RFC3339Nano)
	detail := fmt.Sprintf("evidence signed by %s not proven before %s", o.Selector, since)
	batch := make([]*store.IncidentRecord, 0, 1+len(rep.Found.Affected))
	batch = append(batch, &store.IncidentRecord{Incident: rep.ID, Event: store.IncidentOpened, Actor: o.Actor, Time: rep.OpenedAt,
		Detail: fmt.Sprintf("%s compromised since %s", o.Selector, since)})
	now := time.Now().UTC()
	for _, a := range rep.Found.Affected {
		batch = append(batch, &store.IncidentRecord{Incident: rep.ID, Event: store.IncidentQuarantined, Artifact: a.Digest,
			Actor: o.Actor, Time: now, Detail: detail})
	}
	recorded, err := o.Ledger.AppendAll(ctx, batch)
	if err != nil {
		return &OpError{Op: fmt.Sprintf("record the incident and quarantine %d artifact(s)", len(rep.Found.Affected)), Err: err}
	}
	for _, r := range recorded[1:] {
		rep.Quarantined = append(rep.Quarantined, Quarantined{Artifact: r.Artifact, At: r.Time, Record: r.ID})
	}
	return nil
}

// rollBack rolls back each environment in rep.Running, in order, and
// says in rep.Rollbacks what became of it.
func (o *Options) rollBack(ctx context.Context, rep *Report) {
	for _, p := range rep.Running {
		rb := Rollback{Environment: p.Environment, From: p.Artifact}
		var res *deploy.Result
		err := error(&NotAttemptedError{Reason: "no rollback was asked for"})
		if o.Rollback != nil {
			res, err = o.Rollback(ctx, p.Environment)
		}
		if res != nil {
			rb.Skipped = res.Skipped
		}
		var na *NotAttemptedError
		switch {
		case err == nil && res != nil && res.RolledBackTo != nil:
			rb.Outcome, rb.To, rb.ToName, rb.At = RolledBack, res.RolledBackTo.Artifact, res.RolledBackTo.Name, res.RolledBackTo.Time
		case errors.As(err, &na):
			rb.Outcome, rb.Detail = NotAttempted, na.Reason
		case errors.Is(err, deploy.ErrNoRollback):
			rb.Outcome, rb.Detail = NoRollback, err.Error()
		case err != nil:
			rb.Outcome, rb.Detail = RollbackFail, err.Error()
		default:
			rb.Outcome, rb.Detail = RollbackFail, "rollback recorded nothing"
		}
		rep.Rollbacks = append(rep.Rollbacks, rb)
	}
}

// revoke writes the revoked trust root and, in server mode, pushes it:
// the server checks policy changes against its trust root and serves it
// to every client that pulls, so it must learn the revocation too.
func (o *Options) revoke(ctx context.Context, rep *Report, tr *TrustRoot) error {
	if tr == nil {
		return nil
	}
	b, err := o.Revocation.Document.Marshal()
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(tr.Path, b, 0o644); err != nil {
		return fmt.Errorf("couldn't write %s: %w", tr.Path, err)
	}
	if o.Server != nil {
		tr.Push = pushRevocation(ctx, o.Server, o.Revocation.Document, tr, o.ServerURL, o.Actor)
	}
	rep.TrustRoot = tr
	return nil
}

// pushRevocation sends the revoked trust root version d to the server when
// it carries the admin threshold, and says what became of it.
func pushRevocation(ctx context.Context, srv Server, d *trust.Document, tr *TrustRoot, server, actor string) *TrustPush {
	p := &TrustPush{Server: server}
	push := fmt.Sprintf("custody trust push %s --server %s", tr.Path, server)
	if tr.Signed < tr.Needed {
		p.Detail = fmt.Sprintf("not pushed: it needs %d more admin signature(s); run custody trust sign --root %s --key ADMIN.key, then %s",
			tr.Needed-tr.Signed, tr.Path, push)
		return p
	}
	v, _, err := srv.PushTrustRoot(ctx, d, actor)
	if err != nil {
		p.Detail = fmt.Sprintf("refused: %v; once that is fixed, run %s", err, push)
		var apiErr *client.APIError
		if errors.Is(err, client.ErrUnreachable) || !errors.As(err, &apiErr) {
			p.Detail = fmt.Sprintf("not pushed: %v; run %s", err, push)
		}
		return p
	}
	p.Accepted, p.Version = true, v
	return p
}

// record finishes the report and records it: in the ledger (abridged
// when it does not fit in one record: one request to a server) and whole
// in ReportDir.
func (o *Options) record(ctx context.Context, rep *Report) error {
	rep.Finish()
	b, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("couldn't encode report: %w", err)
	}
	maxRecorded := store.MaxReportSize
	if _, ok := o.Ledger.(ServerLedger); ok {
		maxRecorded = client.MaxIncidentRequestBytes * 2 / 3
	}
	recordedReport, err := rep.MarshalAtMost(maxRecorded)
	if err != nil {
		return fmt.Errorf("couldn't encode report: %w", err)
	}
	r, err := o.Ledger.Append(ctx, &store.IncidentRecord{Incident: rep.ID, Event: store.IncidentReported, Actor: o.Actor,
		Time: time.Now().UTC(), Report: recordedReport})
	if err != nil {
		return &OpError{Op: OpRecordReport, Err: err}
	}
	rep.Record = r.ID
	if o.ReportDir == "" {
		return nil
	}
	var txt strings.Builder
	rep.WriteText(&txt)
	if err := fsutil.WriteFileAtomic(filepath.Join(o.ReportDir, rep.ID+".json"), b, 0o600); err != nil {
		return fmt.Errorf("couldn't write report: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(o.ReportDir, rep.ID+".txt"), []byte(txt.String()), 0o600); err != nil {
		return fmt.Errorf("couldn't write report: %w", err)
	}
	return nil
}
