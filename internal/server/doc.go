// Package server is the HTTP service behind `custody serve`: a transparency
// log (package tlog: C2SP tlog-tiles, https://c2sp.org/tlog-tiles, and the
// Rekor v2 write API), an RFC 3161 timestamp authority
// (https://www.rfc-editor.org/rfc/rfc3161, package tsa), a signing service
// for builders that must not hold keys, and the evidence index (package
// store), in one http.Handler.
//
// # Routes
//
//	GET  /healthz                        public   "ok"
//	GET  /readyz                         public   "ready", or 503 when the log, state or index does not answer (replicas.go)
//	GET  /metrics                        public   Prometheus exposition format; incident and quarantine
//	                                              series only with an auditor or admin token (metrics.go)
//	GET  /checkpoint                     public   latest checkpoint (tlog)
//	GET  /checkpoints/{size}             public   checkpoint history (tlog)
//	GET  /tile/...                       public   Merkle tiles and entry bundles (tlog)
//	GET  /proof/inclusion, /proof/consistency     public (tlog)
//	POST /api/v2/log/entries             builder  Rekor v2 hashedrekord CreateEntryRequest (tlog); approvers and
//	                                     deployers too; anyone with Config.Open.Log (reserved types and the
//	                                     audit key's signatures: 403; DSSE requests: 400; a duplicate: 409)
//	POST /cosignature                    admin    witness cosignature (tlog)
//	POST /api/v1/timestamp               builder  RFC 3161 TimeStampReq (tsa); approvers and deployers too;
//	                                     anyone with Config.Open.TSA
//	GET  /api/v1/trusted-root            public   Sigstore trusted_root.json (this log and TSA)
//	GET  /api/v1/keys/{name}             public   builder public key, PKIX PEM ("audit": the audit key)
//	POST /api/v1/sign                    builder  {"statement": <in-toto statement>} → {"bundle": <bundle>}
//	                                     (decisions, SLSA VSA statements: admin and deployer tokens, signed
//	                                     with the audit key, never a builder key; deployer: decisions only)
//	POST /api/v1/evidence                builder  a Sigstore bundle → {"id": N, "existed": bool}
//	                                     (approver: approvals only; deployer: VSAs only); see
//	                                     Evidence attribution; a bundle the audit key signed or that
//	                                     names it: 403 (auditkey.go); more than one DSSE signature: 400
//	GET  /api/v1/evidence?...            any role search → {"evidence": [...], "next": N} (a page: see Limits)
//	POST /api/v1/packs                   deployer api.PackRequest → the evidence pack (pack.MediaType) of the
//	                                     artifact for the environment, made from this server's state by
//	                                     Config.Packs and signed with the audit key (audited: pack.made);
//	                                     admin too; 409 when it cannot be made (no policy), 501 without Packs
//	POST /api/v1/deployments             deployer a store.Deployment record → {"id": N} (audited)
//	GET  /api/v1/deployments?...         any role environment, after, limit → {"deployments": [...]}
//	GET  /api/v1/trust-root              public   the newest custody trust root (trust.Document JSON)
//	GET  /api/v1/trust-root/{version}    public   an older version, for clients walking the chain
//	POST /api/v1/trust-root              admin    the next version, signed per trust.Update → {"version": N} (audited)
//	GET  /api/v1/policies/{env}          any role the environment's current signed policy (policy.Signed)
//	POST /api/v1/policies                admin    a signed policy, k of n trust root admins, version above
//	                                              the current one → {"environment","version","digest"} (audited)
//	POST /api/v1/incidents               admin    a store.IncidentRecord → {"id": N}, or {"records": [...]}
//	                                     (at most 10,000, within the body cap; all or none) → {"ids": [...]} (audited)
//	GET  /api/v1/incidents?...           any role incident, artifact, event, after, limit → {"records": [...]}
//	GET  /api/v1/tokens                  admin    TokenList: names, roles, times; never a secret (tokenapi.go)
//	POST /api/v1/tokens/revoke           admin    {"name": NAME-OR-ID} → TokenStatus (audited)
//	GET  /ui/..., POST /ui/login, POST /ui/logout  the dashboard (Config.UI) and its sessions (session.go)
//	POST /api/v2/signingCert             ID token of a trusted issuer (Config.CA, server_ca.go): Fulcio v2
//	                                     request → certificate with an embedded SCT (ca.issued audited first)
//	GET  /api/v2/trustBundle             public   the CA's chain (Config.CA)
//
// "builder" means a builder or admin token; "any role" means any valid token.
// With Config.CA, an OIDC ID token of a trusted issuer also counts as a
// builder token (scoped to its issuer entry's builder key, or to none).
// Open writes (Config.Open, openwrites.go) take requests without a token
// on the two routes that say so, rate-limited per client address (429);
// a request that sends a token is checked as on a closed route.
// Tokens are sent as "Authorization: Bearer TOKEN". A request without a
// token gets 401, one with a token of the wrong role 403. Every failure is
// answered with one line of text/plain. Request bodies are capped
// (Config.MaxBody, default 1 MiB: 413); malformed JSON (also a duplicate
// member name or a string that is not UTF-8: jsonstrict.Check), statements,
// entries and bundles, and bad signatures get 400 and leave nothing in the log or
// index; a build ID that was already indexed gets 409; more than
// Config.MaxInflight concurrent write requests, or a log that pushes back,
// get 503 with Retry-After.
//
// # Limits
//
// custody serve runs the handler on package httplimit: headers, bodies,
// answers and idle keep-alive connections have time limits, and
// connections are capped (the oldest idle one is closed to make room, else
// the new one is refused). A write reads its body first (capped, within
// the body deadline: 408 when it does not come) and only then takes one of
// Config.MaxInflight slots, so clients that send headers and stall hold
// none. Evidence searches take one of Config.MaxSearches slots (waiting up
// to 10 s, then 503) until their answer is written. Config.AdminReserve of
// the slots of each kind are for admin tokens only: no other role can
// starve incident response.
//
// A search answers one page: at most limit records (default 100, at most
// 1,000) and, beyond the first record, no more bundles than reach
// Config.MaxPageBytes (store.Query.MaxBytes: the index stops reading
// there), written record by record, so one search holds about a page and
// one bundle. When the page is full or ended at the byte cap the answer
// names where the matches continue, "next": N (SearchResponse); ask again
// with after=N. A client that ignores "next" must page by after = the last
// ID until a page is empty: a page shorter than limit is not the end.
//
// # Audit trail
//
// Every request that changes state other than by adding a signed bundle (a
// deployment record, an incident step, a policy or trust root change) is
// preceded by an audit entry: an in-toto statement of predicate type
// PredicateAudit (who asked, by token and as the client says; what; when;
// the request's record, or for quarantines the fields their records share
// once and then the artifacts) signed with the audit key, timestamped, appended
// to the log and indexed. When the entry cannot be written the request is
// refused, so no change lacks its entry. Signed bundles (provenance,
// approvals, decisions) are their own log entries. `custody audit` lists
// both and verifies each entry's inclusion.
//
// The server's state (policies, trust root versions, deployment and
// incident records) is derived only from audit entries signed by the audit
// key and proven in this server's log: at start Open reads them through
// auditReader, which rebuilds the log entry of the envelope's signature
// under the audit key and proves it against the log's checkpoint; any
// other row of the audit type is named in a warning and skipped, never
// applied and never a reason to refuse to start. The predicate types that
// mean server state (reservedNamespaces: custody.dev/audit, trust-root,
// trust-keys, policy) and the payload types of signed policies and trust
// roots are refused with 403 from every client path (POST /api/v1/evidence,
// /api/v1/sign, /api/v2/log/entries), as is a log append under the audit
// key and a pushed bundle of any type that the audit key signed or that
// names it (checkAuditKeyBundle: the server's own decisions pushed back
// included). The audit key signs nothing else but the server's decisions and
// the red flags it computes for every verified provenance it indexes
// (redflags.go: off the write path, attest.PredicateRedFlags, whose
// namespace is reserved too). See docs/SECURITY.md for the trust boundary.
//
// # Evidence attribution
//
// The index attributes a bundle to a signer only from a verification that
// succeeded (verify.Verify) against what the server trusts: the current
// custody trust root's logs, timestamp authorities, certificate
// authorities and evidence-signing keys, plus this server's log, TSA,
// builder keys and audit key (evidenceTrust). The signer key ID is that of
// the trusted key the verifier selected by the bundle's exact hint, never
// the hint decoded; the identity is that of a certificate a trusted CA
// issued; the time and log index are what a trusted log or TSA proved; the
// builder, source and build ID are read from the verified statement.
//
// A bundle that verifies against nothing the server trusts is stored
// unverified: as pushed, found by its subjects and predicate type, with no
// signer, builder, source, build ID, log index or time (EvidenceJSON.Verified
// is false). It reserves no build ID and no incident selector matches it.
// A bundle whose hint is exactly a trusted key's but that does not verify
// is refused (400). A verified bundle without an entry of this log is
// timestamped, logged (hashedrekord of its signature) and indexed with both
// added (logPushed), so the audit trail holds it with a proven time; the
// same envelope pushed again finds that record. See docs/SECURITY.md.
//
// The search parameters of GET /api/v1/evidence are digest, name,
// predicateType, notPredicateType (repeatable: leave these types out),
// signerKeyId, identity, builder, source, commit, buildId,
// since and until (RFC 3339), after (an evidence ID) and limit; see
// store.Query.
//
// # Data directory
//
//	DIR/meta.json            creation time: start of every key's validity window
//	DIR/keys/log.key         log checkpoint key (ECDSA P-256)
//	DIR/keys/tsa.key         TSA key (ECDSA P-256)
//	DIR/keys/tsa-chain.pem   TSA certificate chain, leaf first (tsa.GenerateChain)
//	DIR/keys/builder.key     the default builder key "builder" (ECDSA P-256)
//	DIR/keys/audit.key       the audit key: signs audit entries (ECDSA P-256)
//	DIR/log/                 the transparency log (tlog.Options.Dir)
//	DIR/index.db             the SQLite evidence index, unless Config.Index is another
//	DIR/tokens               API tokens: one JSON object per line holding the token's
//	                         SHA-256, role, builder key, name, creation, expiry and
//	                         revocation (0600; rewritten by custody token, read again
//	                         by the server when it changes: tokenstore.go)
//	DIR/tokens.lock          serialises the commands that rewrite DIR/tokens
//	DIR/tokens.used          each token's last use, written by the server every 10 s
//	DIR/journal/             signing requests and incident reports in flight (see Crash safety)
//	DIR/records.reconciled   how far the start-up reconciliation of records read
//	DIR/trust-root/N.json    every accepted version of the custody trust root (Config.TrustRoot, pushes)
//	DIR/policies/ENV.yaml    an environment's current policy, as signed (the dashboard reads it)
//	DIR/policies/ENV.envelope.json  its signed envelope (policy.Signed), served and checked for replays
//
// With Config.State in PostgreSQL (replicas: replicas.go), every file
// above but the private keys, the log and the index is a row of
// custody_state under the same name, the journal is journal/REPLICA/, and
// the log is in MySQL (Config.LogMySQL).
//
// Private keys are PKCS#8 PEM files of mode 0600, encrypted in the Sigstore
// encrypted key format (signer.EncryptPrivateKey) when Config.Password is set
// (custody serve reads it from CUSTODY_SERVER_PASSWORD). Everything is created
// on first start.
//
// # Crash safety
//
// A signing request is acknowledged only once its log entry is covered by a
// published checkpoint and its bundle is in the index. Before the entry is
// appended, the signed (not yet logged) bundle is written to DIR/journal and
// synced; once the log returns the entry, the journal file is replaced by the
// final bundle; once the index holds it, the journal file is removed. Audit
// entries and decisions, which the audit key signs, take the same path, and
// so do pushed bundles the server logs (NONCE.push.json, with the entry's
// canonical body beside it in NONCE.push.entry, since the server cannot
// rebuild it without the pusher's key; replayed, they are verified again as
// a push is). Once journalled, a write is logged and indexed even if its
// client goes away. On start, Open reconciles: a journalled final bundle is
// indexed again (Put is idempotent), and a journalled request whose entry
// reached the log is found there by its leaf, given an inclusion proof and
// indexed; one that never reached the log was never acknowledged and is
// dropped. A journal file
// signed by a key the server no longer holds is kept and named in the log
// (its entry may be in the log). So after a crash every acknowledged entry is
// in the log, every indexed log entry is in the log at its recorded index,
// and every log entry the server signed is indexed.
//
// A deployment or incident write appends its audit entry, then its records
// (an incident report is journalled under DIR/journal/reports first, since
// the entry carries only its SHA-256). After the journal, Open appends the
// records of every audit entry (of this server: auditReader) whose records
// a crash (or a failed append) kept out of the index, matching records to
// entries by content, so none is
// appended twice; DIR/records.reconciled marks how far it read. A request
// refused after some of its audit entries reached the log (a large incident
// batch is several entries) gets those entries' records: what the log
// records is what the server serves.
//
// A policy push writes its "policy.changed" audit entry, then
// DIR/policies/ENV.envelope.json, then ENV.yaml. After the journal, Open
// makes every environment's files the version its newest (by log
// position) verified policy.changed entry records, writing them again when a crash left them missing or
// older; it refuses to start (ErrPolicyAhead) when they hold a policy the
// audit trail does not record. So the log and the served policy agree.
// Likewise a trust root version whose verified "trust.changed" entry is in
// the index but whose DIR/trust-root/N.json a crash took is written again; another
// document stored under that version is a fork (trust.ErrFork).
//
// Two tests hold these promises: crash_test.go kills a real custody serve
// with SIGKILL at every crashpoint (package crashpoint) and at random
// moments, and indexfault_test.go makes the index (a store.Memory with
// fault hooks) fail before or after each kind of write. After each, the
// restarted server must serve exactly what its log records and every write
// it acknowledged.
package server
