// Package crashpoint names the steps of custody serve's writes between
// which a crash leaves different state on disk (the journal, the log, the
// index, the files of policies and trust roots), so that tests can kill the
// server exactly there and check that a restart reconciles each state (see
// Crash safety in package server).
//
// The server calls Reach at each step. No hook is installed outside tests:
// Reach then only loads a nil pointer.
package crashpoint

import "sync/atomic"

// The steps, in the order a write reaches them. A write that appends an
// audit entry (a policy or trust root change, a deployment or incident
// record) reaches the Sign steps inside its own step list.
const (
	// SignJournaled: the signed bundle is journalled (DIR/journal); its
	// entry is not yet handed to the log.
	SignJournaled = "sign.journaled"
	// LogSequenced: the log has integrated the entry at its index; no
	// published checkpoint covers it yet (the writer awaits one).
	LogSequenced = "log.sequenced"
	// SignLogged: a published checkpoint covers the entry; the journal
	// still holds the bundle without its log entry.
	SignLogged = "sign.logged"
	// SignFinal: the journal holds the final bundle; it is not indexed.
	SignFinal = "sign.final"
	// SignIndexed: the bundle is indexed; its journal file is not yet
	// removed and the client has no answer.
	SignIndexed = "sign.indexed"
	// PushIndexed: a pushed bundle is indexed; the client has no answer.
	PushIndexed = "push.indexed"
	// PolicyAudited: the policy.changed audit entry is indexed; no policy
	// file is written.
	PolicyAudited = "policy.audited"
	// PolicyEnvelope: ENV.envelope.json is written, ENV.yaml is not.
	PolicyEnvelope = "policy.envelope"
	// TrustAudited: the trust.changed audit entry is indexed;
	// DIR/trust-root/N.json is not written.
	TrustAudited = "trust.audited"
	// DeploymentAudited: the deployment's audit entry is indexed; the
	// record is not appended.
	DeploymentAudited = "deployment.audited"
	// IncidentAudited: the incident records' audit entries are indexed;
	// the records are not appended.
	IncidentAudited = "incident.audited"
	// RecordAppended: a deployment or incident record is appended; the
	// client has no answer.
	RecordAppended = "record.appended"
)

var hook atomic.Pointer[func(step string)]

// Set installs h, called with each step reached; nil removes it. Only
// tests install a hook.
func Set(h func(step string)) {
	if h == nil {
		hook.Store(nil)
		return
	}
	hook.Store(&h)
}

// Reach reports that the calling write reached step.
func Reach(step string) {
	if h := hook.Load(); h != nil {
		(*h)(step)
	}
}
