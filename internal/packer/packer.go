// Package packer gathers what an evidence pack (package pack) holds: from
// a custody server (its evidence index, signed policy, trust root chain,
// trusted root, log checkpoint with consistency proofs, incident
// quarantine) or from local files.
package packer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/trust"
)

// FromServer gathers the pack of artifact ("sha256:HEX") for env from the
// server cl talks to. The server's log checkpoint is checked consistent
// with the one cl remembers; every bundle checkpoint of that log gets a
// consistency proof to it. The server's policy must verify against its
// current trust root (a pack the device would refuse is not made).
func FromServer(ctx context.Context, cl *client.Client, artifact, env string, now time.Time) (*pack.Contents, error) {
	c := &pack.Contents{Artifact: artifact, Environment: env, Created: now}
	bs, err := gate.FromServer(ctx, cl, artifact)
	if err != nil {
		return nil, fmt.Errorf("couldn't fetch evidence: %w", err)
	}
	c.Bundles = gate.JSONs(bs)
	if err := serverTrust(ctx, cl, c); err != nil {
		return nil, err
	}
	sp, err := cl.Policy(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("couldn't fetch the signed policy of %s: %w", env, err)
	}
	if err := setPolicy(c, sp, now); err != nil {
		return nil, err
	}
	if err := serverCheckpoint(ctx, cl, c); err != nil {
		return nil, err
	}
	id, err := incident.Quarantine{Ledger: incident.ServerLedger{Client: cl}}.Quarantined(ctx, artifact)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the incident quarantine: %w", err)
	}
	c.Quarantine = pack.Quarantine{Checked: true, Incident: id}
	return c, nil
}

// serverTrust sets the trust root chain (every version, 1 to current) and
// the trusted root.
func serverTrust(ctx context.Context, cl *client.Client, c *pack.Contents) error {
	cur, err := cl.TrustRootDocument(ctx, 0)
	if err != nil {
		return fmt.Errorf("couldn't fetch the server's trust root: %w", err)
	}
	for v := 1; v < cur.Version; v++ {
		d, err := cl.TrustRootDocument(ctx, v)
		if err != nil {
			return fmt.Errorf("couldn't fetch trust root version %d: %w", v, err)
		}
		c.TrustRoots = append(c.TrustRoots, d)
	}
	c.TrustRoots = append(c.TrustRoots, cur)
	if c.TrustedRoot, err = cl.TrustedRoot(ctx); err != nil {
		return fmt.Errorf("couldn't fetch the server's trusted root: %w", err)
	}
	return nil
}

// setPolicy checks sp against the newest trust root and puts it in c.
func setPolicy(c *pack.Contents, sp *policy.Signed, now time.Time) error {
	if len(c.TrustRoots) == 0 {
		return errors.New("no trust root")
	}
	r := c.TrustRoots[len(c.TrustRoots)-1]
	if _, err := sp.Verify(r, now); err != nil {
		return fmt.Errorf("the policy of %s is not signed by the admins of trust root version %d: %w", c.Environment, r.Version, err)
	}
	if env := sp.Policy().Environment; env != c.Environment {
		return fmt.Errorf("the signed policy is the policy of %s, not %s", env, c.Environment)
	}
	b, err := sp.Marshal()
	if err != nil {
		return err
	}
	c.SignedPolicy, c.PolicyDigest = b, sp.Digest()
	return nil
}

// serverCheckpoint sets the log's latest checkpoint and the consistency
// proofs from each bundle checkpoint of that log. The newest trust root
// must name the log: a device trusts no other.
func serverCheckpoint(ctx context.Context, cl *client.Client, c *pack.Contents) error {
	lc, err := cl.Log(ctx)
	if err != nil {
		return fmt.Errorf("couldn't reach the server's log: %w", err)
	}
	// With a witness threshold, the newest checkpoint that many witnesses
	// cosigned: the log publishes before they cosign.
	newest := c.TrustRoots[len(c.TrustRoots)-1]
	k := 0
	if wp, err := newest.WitnessPolicy(c.Created); err == nil {
		k = wp.Threshold
	}
	cp, err := lc.WitnessedCheckpoint(ctx, k)
	if err != nil {
		return fmt.Errorf("couldn't fetch the log's checkpoint: %w", err)
	}
	if _, err := pack.VerifyCheckpoint(cp.Note, newest.Root.Tlogs); err != nil {
		return fmt.Errorf("trust root version %d does not name this server's log, so a device would refuse the pack (put the server's trusted root in the trust root: custody trust export --server URL, custody trust set --trusted-root): %w", newest.Version, err)
	}
	if _, err := pack.CheckWitnesses(cp.Note, newest, c.Created); err != nil {
		return fmt.Errorf("a device would refuse the pack: %w (run custody witness for the trust root's witnesses, then make the pack again)", err)
	}
	c.Checkpoints = [][]byte{cp.Note}
	var proofs []pack.Proof
	seen := map[uint64]bool{}
	for _, b := range c.Bundles {
		for _, n := range pack.BundleCheckpoints(b) {
			bc, err := tlog.ParseCheckpoint(n, lc.Verifier())
			if err == nil && bc.Size > cp.Size && k > 0 {
				// cp is the newest checkpoint enough witnesses cosigned; a
				// device proves the bundle's checkpoint consistent with it,
				// so it must not be older.
				return fmt.Errorf("%w: a bundle's log checkpoint of size %d is newer than the newest checkpoint %d witness(es) cosigned (size %d): its entry is not yet covered by a witnessed checkpoint; retry after the witnesses run (custody witness)",
					trust.ErrWitnesses, bc.Size, k, cp.Size)
			}
			if err != nil || bc.Size == 0 || bc.Size >= cp.Size || seen[bc.Size] {
				continue
			}
			seen[bc.Size] = true
			p, err := lc.ConsistencyProof(ctx, bc.Size, cp.Size)
			if err != nil {
				return fmt.Errorf("couldn't fetch a consistency proof: %w", err)
			}
			proofs = append(proofs, pack.Proof{From: bc.Size, Hashes: p})
		}
	}
	c.Proofs = [][]pack.Proof{proofs}
	return nil
}

// Local is what a pack made without a server holds.
type Local struct {
	// Bundles are the evidence files (gate.ReadDir), of every artifact.
	Bundles []gate.Bundle
	// SignedPolicy is the environment's signed policy.
	SignedPolicy *policy.Signed
	// TrustRoot is the custody trust root the policy verifies under.
	TrustRoot *trust.Document
	// TrustedRoot is a Sigstore trusted root (may be nil).
	TrustedRoot []byte
	// Ledger is an incident ledger to look the artifact up in (may be nil).
	Ledger incident.Ledger
}

// FromLocal gathers the pack of artifact for env from local files: the
// bundles about the artifact (gate.ForArtifact), the checkpoints their
// inclusion proofs end in (the newest of each log the trust root names).
func FromLocal(ctx context.Context, l *Local, artifact, env string, now time.Time) (*pack.Contents, error) {
	c := &pack.Contents{Artifact: artifact, Environment: env, Created: now,
		Bundles: gate.JSONs(gate.ForArtifact(l.Bundles, artifact)), TrustRoots: []*trust.Document{l.TrustRoot}, TrustedRoot: l.TrustedRoot}
	if err := setPolicy(c, l.SignedPolicy, now); err != nil {
		return nil, err
	}
	if l.TrustedRoot != nil {
		if _, err := trust.LoadTrustedRoot(l.TrustedRoot); err != nil {
			return nil, fmt.Errorf("trusted root: %w", err)
		}
	}
	// Only the trust root's logs: a device trusts no other (pack.Open).
	c.Checkpoints = pack.NewestCheckpoints(c.Bundles, l.TrustRoot.Root.Tlogs)
	for _, n := range c.Checkpoints {
		if _, err := pack.CheckWitnesses(n, l.TrustRoot, now); err != nil {
			return nil, fmt.Errorf("a device would refuse the pack: %w (the bundles' own checkpoints carry no cosignatures: make the pack with --server once the witnesses cosigned the log's checkpoint)", err)
		}
	}
	if l.Ledger != nil {
		id, err := incident.Quarantine{Ledger: l.Ledger}.Quarantined(ctx, artifact)
		if err != nil {
			return nil, fmt.Errorf("couldn't read the incident quarantine: %w", err)
		}
		c.Quarantine = pack.Quarantine{Checked: true, Incident: id}
	}
	return c, nil
}

// loopbackURL is the base URL of requests Loopback serves in process;
// they never reach a network.
const loopbackURL = "http://custody.loopback"

// Loopback gathers the pack as FromServer does, reading through own (a
// custody server's handler, in this process) with token: what
// server.Config.Packs is for custody serve.
func Loopback(ctx context.Context, own http.Handler, token, artifact, env string, now time.Time) (*pack.Contents, error) {
	cl, err := client.New(loopbackURL, token, client.WithHTTPClient(&http.Client{Transport: loopback{own}}))
	if err != nil {
		return nil, err
	}
	return FromServer(ctx, cl, artifact, env, now)
}

// loopback is an http.RoundTripper that serves requests with a handler in
// this process.
type loopback struct{ h http.Handler }

func (l loopback) RoundTrip(req *http.Request) (*http.Response, error) {
	rw := &answer{header: http.Header{}}
	req = req.Clone(req.Context())
	req.RemoteAddr = "127.0.0.1:0"
	req.RequestURI = req.URL.RequestURI()
	if req.Body == nil {
		req.Body = http.NoBody
	}
	l.h.ServeHTTP(rw, req)
	if rw.code == 0 {
		rw.code = http.StatusOK
	}
	return &http.Response{StatusCode: rw.code, Status: http.StatusText(rw.code), Header: rw.header,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: req,
		Body: io.NopCloser(bytes.NewReader(rw.body.Bytes())), ContentLength: int64(rw.body.Len())}, nil
}

// answer records a handler's answer, at most client.MaxResponseBytes of
// body (the client reads no more).
type answer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *answer) Header() http.Header { return w.header }

func (w *answer) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *answer) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.body.Len()+len(b) > client.MaxResponseBytes {
		return 0, errors.New("answer larger than a client reads")
	}
	return w.body.Write(b)
}
