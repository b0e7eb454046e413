// Package cabench measures custody serve's certificate authority:
// certificates issued per second and their p99 latency through
// POST /api/v2/signingCert (token verification, proof of possession,
// precertificate recorded in the log, SCT, certificate), against the same
// process's log append (a key-signed statement logged through
// POST /api/v2/log/entries) as the baseline. It holds benchmarks only; see
// results.md.
package cabench
