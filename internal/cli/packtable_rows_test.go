package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The policies of the pack table. prod requires every kind of requirement
// the declarative policy has; rfmissing only a red flags statement, signed
// by a key that never signs one; rego adds a custom rule.
const prodPolicy = `apiVersion: custody.dev/policy/v1
environment: prod
version: 1
trustedBuilders: [https://custody.dev/builders/local]
sources: [{repo: github.com/acme/app, refs: ["refs/heads/*", "refs/tags/*"]}]
signers: [{keyId: @ci@}, {keyId: @b2@}, {keyId: @q4@}]
requiredEvidence: [sbom, vuln-scan, rebuild]
maxAge: 30d
requireLog: true
requireTimestamp: true
maxSeverity: high
rebuilders: 1
exceptions:
  - {id: CVE-2020-0001, until: "2021-01-01", approvedBy: security}
  - {id: CVE-2099-0001, until: "2099-12-31", approvedBy: security}
groups:
  release:
    - {name: alice, keyIds: [@alice@, @alice2@]}
    - {name: bob, keyIds: [@bob@]}
    - {name: carol, keyIds: [@b2@]}
  security:
    - {name: dave, keyIds: [@dave@]}
approvals: [{group: release, count: 2}]
redFlags:
  signers: [{keyId: @audit@}]
  deny: [non-release-ref]
  requireApproval: {new-builder-key: {group: security, count: 1}}
`

const rfMissingPolicy = `apiVersion: custody.dev/policy/v1
environment: rfmissing
version: 1
trustedBuilders: [https://custody.dev/builders/local]
signers: [{keyId: @ci@}]
redFlags:
  signers: [{keyId: @packer@}]
  deny: [new-source]
`

const reviewedPolicy = `apiVersion: custody.dev/policy/v1
environment: reviewed
version: 1
trustedBuilders: [https://custody.dev/builders/local]
signers: [{keyId: @ci@}]
groups:
  devs:
    - {name: alice, keyIds: [@alice@], emails: [alice@example.com]}
    - {name: bob, keyIds: [@bob@], emails: [bob@example.com]}
  security:
    - {name: dave, keyIds: [@dave@], emails: [dave@example.com]}
reviews:
  everyCommit: true
  protectedPaths: [{group: security, count: 1}]
`

const regoPolicy = `apiVersion: custody.dev/policy/v1
environment: rego
version: 1
trustedBuilders: [https://custody.dev/builders/local]
signers: [{keyId: @ci@}]
rego: |
  package custody
  deny contains msg if {
    count(input.approvals) == 0
    msg := "rego: an approval is needed"
  }
`

// evidence says what evidence an artifact gets: by default everything prod
// requires (provenance by ci from acme/app at main, an SBOM, a clean scan,
// a matching rebuild by the rebuilder, approvals of alice and bob for
// prod).
type evidence struct {
	build                tbuild
	noProvenance, noSBOM bool
	noScan, noRebuild    bool
	findings             map[string]string
	rebuildKey           string
	rebuildMismatch      bool
	approvers            []string // default alice, bob
	approveEnv           string   // default the row's
	noApprovals          bool
	earlierBuildKey      string // a build of the same name before, by this key
	subject              string // default the row's name
	reviewers            []string
}

// full makes the artifact's evidence.
func (e *tableEnv) full(name, env string, o evidence) (string, string) {
	e.t.Helper()
	b := o.build
	if b.key == "" {
		b.key = "ci"
	}
	if b.builder == "" {
		b.builder = "https://custody.dev/builders/local"
	}
	if b.repo == "" {
		b.repo = "github.com/acme/app"
	}
	if b.ref == "" {
		b.ref = "refs/heads/main"
	}
	b.commitSeed = fmt.Sprint(name, e.next())
	subject := name
	if o.subject != "" {
		subject = o.subject
	}
	if o.earlierBuildKey != "" {
		_, d0 := e.artifact(name + "-earlier")
		e.provenance(subject, d0, tbuild{key: o.earlierBuildKey, builder: b.builder, repo: b.repo, ref: b.ref})
		e.srv.WaitRedFlags()
	}
	path, digest := e.artifact(name)
	provBundle, buildID := strings.Repeat("cd", 32), "no-such-build"
	if !o.noProvenance {
		provBundle, buildID = e.provenance(subject, digest, b)
	}
	if !o.noSBOM {
		e.signed(e.sbomStatement(subject, digest))
	}
	if !o.noScan {
		e.scan(subject, digest, o.findings)
	}
	if !o.noRebuild {
		k := o.rebuildKey
		if k == "" {
			k = "rebuilder"
		}
		e.rebuild(k, subject, digest, provBundle, buildID, !o.rebuildMismatch)
	}
	for _, r := range o.reviewers {
		e.review(r, b)
	}
	if !o.noApprovals {
		approvers := o.approvers
		if approvers == nil {
			approvers = []string{"alice", "bob"}
		}
		aenv := env
		if o.approveEnv != "" {
			aenv = o.approveEnv
		}
		for _, a := range approvers {
			e.approve(a, aenv, digest)
		}
	}
	return path, digest
}

func row(name, env string, o evidence, deny ...string) tableRow {
	return tableRow{name: name, env: env, allowed: len(deny) == 0, deny: deny,
		setup: func(e *tableEnv) (string, string) { return e.full(name, env, o) }}
}

func (r tableRow) withCLI() tableRow { r.cli = true; return r }

func (r tableRow) withoutAuditKey() tableRow { r.noAuditKey = true; return r }

// tableRows are the deploy scenarios, in the order they run: the
// incident and the trust root rotation change the server's state for
// the rows after them.
func tableRows() []tableRow {
	old := time.Now().Add(-60 * 24 * time.Hour)
	return []tableRow{
		row("allowed", "prod", evidence{}).withCLI(),
		row("no provenance", "prod", evidence{noProvenance: true}, "provenance", "evidence:rebuild", "rebuild", "redflags"),
		row("untrusted builder", "prod", evidence{build: tbuild{builder: "https://evil.example/builder"}}, "builder"),
		row("signer not in the policy", "prod", evidence{build: tbuild{key: "c3"}}, "signer"),
		row("source not allowed", "prod", evidence{build: tbuild{repo: "github.com/mallory/app"}}, "source"),
		row("ref not allowed", "prod", evidence{build: tbuild{ref: "refs/pull/1/head"}}, "source"),
		row("dirty source", "prod", evidence{build: tbuild{dirty: true}}, "source"),
		row("older than maxAge", "prod", evidence{build: tbuild{finished: old}}, "max-age"),
		row("no SBOM", "prod", evidence{noSBOM: true}, "evidence:sbom"),
		row("no scan", "prod", evidence{noScan: true}, "evidence:vuln-scan", "vulnerabilities"),
		row("critical finding", "prod", evidence{findings: map[string]string{"CVE-2026-1234": "CRITICAL"}}, "vulnerabilities").withCLI(),
		row("finding under an expired exception", "prod", evidence{findings: map[string]string{"CVE-2020-0001": "CRITICAL"}}, "vulnerabilities"),
		row("finding under an exception", "prod", evidence{findings: map[string]string{"CVE-2099-0001": "CRITICAL"}}).withCLI(),
		row("no rebuild", "prod", evidence{noRebuild: true}, "evidence:rebuild", "rebuild"),
		row("rebuild did not reproduce", "prod", evidence{rebuildMismatch: true}, "evidence:rebuild", "rebuild", "rebuild"),
		row("rebuilt by its builder", "prod", evidence{rebuildKey: "ci"}, "rebuild"),
		row("one approval of two", "prod", evidence{approvers: []string{"alice"}}, "approval:release").withCLI(),
		row("no approval", "prod", evidence{noApprovals: true}, "approval:release"),
		row("approvals for another environment", "prod", evidence{approveEnv: "staging"}, "approval:release"),
		row("builder approves own build", "prod", evidence{build: tbuild{key: "b2"}, approvers: []string{"alice", "carol"}}, "approval:release"),
		row("red flag denies", "prod", evidence{earlierBuildKey: "ci", build: tbuild{ref: "refs/heads/feature"}}, "redflag:non-release-ref"),
		row("red flag needs approval", "prod", evidence{earlierBuildKey: "ci", build: tbuild{key: "b2"}}, "redflag:new-builder-key"),
		row("red flag approved", "prod", evidence{earlierBuildKey: "ci", build: tbuild{key: "b2"}, approvers: []string{"alice", "bob", "dave"}}).withCLI(),
		row("no red flags statement", "rfmissing", evidence{noApprovals: true}, "redflags"),
		row("no review", "reviewed", evidence{noSBOM: true, noScan: true, noRebuild: true, noApprovals: true}, "review", "review:security"),
		row("author reviews own commits", "reviewed", evidence{noSBOM: true, noScan: true, noRebuild: true, noApprovals: true, reviewers: []string{"alice"}}, "review", "review", "review:security"),
		row("workflow change without security", "reviewed", evidence{noSBOM: true, noScan: true, noRebuild: true, noApprovals: true, reviewers: []string{"bob"}}, "review:security"),
		row("reviewed", "reviewed", evidence{noSBOM: true, noScan: true, noRebuild: true, noApprovals: true, reviewers: []string{"bob", "dave"}}).withCLI(),
		row("rego denies", "rego", evidence{noApprovals: true}, "rego").withCLI(),
		row("rego allows", "rego", evidence{approvers: []string{"alice"}}).withCLI(),
		row("without the audit key, no redFlags section", "rego", evidence{approvers: []string{"alice"}}).withoutAuditKey().withCLI(),
		row("without the audit key, red flags not counted", "prod", evidence{}, "redflags").withoutAuditKey().withCLI(),
	}
}

// approver is the key file an approver signs with.
func approverKey(name string) string {
	if name == "carol" {
		return "b2"
	}
	return name
}

// statefulRows change the server's state as they go: an incident
// quarantines what q4 signed and is closed again (its quarantine stays);
// trust root version 2 revokes alice's approver key and adds her new one.
// The device still trusts version 1: the packs carry the chain.
func (e *tableEnv) statefulRows() []tableRow {
	var qPath, qDigest, incident string
	return []tableRow{
		{name: "quarantined by an open incident", env: "prod", allowed: true, quarantined: true, cli: true,
			setup: func(e *tableEnv) (string, string) {
				qPath, qDigest = e.full("quarantined", "prod", evidence{build: tbuild{key: "q4"}})
				out := e.custody(0, "incident", "open", "--key", e.path("q4.pub"), "--compromised-since",
					time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "--server", e.url, "--json")
				var rep struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.ID == "" {
					e.t.Fatalf("incident open --json: %v\n%s", err, out)
				}
				incident = rep.ID
				return qPath, qDigest
			}},
		{name: "incident closed", env: "prod", allowed: true, quarantined: true,
			setup: func(e *tableEnv) (string, string) {
				e.custody(0, "incident", "close", incident, "--server", e.url, "--reason", "key replaced")
				return qPath, qDigest
			}},
		{name: "approver key revoked", env: "prod", deny: []string{"approval:release"},
			setup: func(e *tableEnv) (string, string) {
				path, digest := e.full("revoked", "prod", evidence{})
				root := e.path("root.json")
				e.custody(0, "trust", "revoke", "--root", root, "--key", e.path("alice.pub"), "--compromised-since", "2021-01-01T00:00:00Z")
				e.nextRoot("add-key", "--key", e.path("alice2.pub"), "--role", "approver",
					"--identity", "alice", "--valid-from", "2021-01-01T00:00:00Z")
				return path, digest
			}},
		row("approver's new key", "prod", evidence{approvers: []string{"alice2", "bob"}}).withCLI(),
		{name: "approval made before its key was rotated out", env: "prod", allowed: true,
			setup: func(e *tableEnv) (string, string) {
				path, digest := e.full("rotated", "prod", evidence{approvers: []string{"alice2", "bob"}})
				e.nextRoot("rotate", "--old", e.path("bob.pub"), "--new", e.path("bob2.pub"),
					"--at", time.Now().Add(time.Second).UTC().Format(time.RFC3339))
				return path, digest
			}},
		// The quarantined artifact again, under trust root version 4 that
		// revokes q4 from before its build: its provenance no longer
		// verifies (and alice's approval has not since version 2).
		{name: "builder key revoked after the incident", env: "prod", quarantined: true,
			deny: []string{"provenance", "evidence:rebuild", "rebuild", "approval:release", "redflags"},
			setup: func(e *tableEnv) (string, string) {
				e.nextRoot("revoke", "--key", e.path("q4.pub"), "--compromised-since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
				return qPath, qDigest
			}},
	}
}

// nextRoot makes, signs and pushes the next trust root version: root.json
// changed by 'custody trust VERB ARGS...'.
func (e *tableEnv) nextRoot(verb string, args ...string) {
	e.t.Helper()
	root := e.path("root.json")
	e.custody(0, append([]string{"trust", verb, "--root", root}, args...)...)
	e.custody(0, "trust", "sign", "--root", root, "--key", e.path("admin.key"))
	e.custody(0, "trust", "push", root, "--server", e.url)
}
