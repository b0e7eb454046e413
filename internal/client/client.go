// Package client talks to a custody server (`custody serve`, package
// internal/server): it signs statements with the server's builder key, pushes
// and searches evidence, and reads the server's trusted root, builder keys
// and transparency log.
//
// Every interaction that returns log data (Sign, Push, Search results with
// entries of the server's log, Log) checks that the log only ever grew
// consistently from the last checkpoint this client remembers (C2SP
// tlog-checkpoint, RFC 6962 consistency proofs), so a log that forks or
// rewinds is reported as an error wrapping tlog.ErrInconsistent or
// tlog.ErrRollback and never silently accepted. With WithCheckpointDir the
// remembered checkpoints persist across runs (tlog.CheckpointStore).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/trust"
)

// ErrUnreachable is wrapped by errors for a server that could not be reached
// (connection refused, DNS failure, timeout). A CLI maps it to exit code 3.
var ErrUnreachable = errors.New("custody server unreachable")

// APIError is a 4xx or 5xx answer of the server with its one-line reason.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// MaxResponseBytes bounds what the client reads from the server.
const MaxResponseBytes = 64 << 20

// Client is a client of one custody server. It is safe for concurrent use.
type Client struct {
	base   string
	token  string
	hc     *http.Client
	cpDir  string
	mu     sync.Mutex
	log    *tlog.Client
	logID  []byte
	cps    *tlog.CheckpointStore
	lastCP *tlog.Checkpoint // when no checkpoint dir
	wp     *trust.WitnessPolicy
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default http.DefaultClient).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithCheckpointDir keeps the last checkpoint seen of each log in dir
// (the CLI passes os.UserConfigDir()/custody/checkpoints). Without it the
// client remembers checkpoints only while it lives.
func WithCheckpointDir(dir string) Option { return func(c *Client) { c.cpDir = dir } }

// WithWitnessPolicy makes the client accept the server's log checkpoints
// only when they meet p (tlog.Client.RequireWitnesses): a checkpoint too
// few witnesses cosigned is an error wrapping trust.ErrWitnesses, and is
// never remembered. The CLI passes the policy of a trust root that sets a
// witness threshold.
func WithWitnessPolicy(p *trust.WitnessPolicy) Option { return func(c *Client) { c.wp = p } }

// New returns a client of the server at baseURL that authenticates with
// token ("" for public reads only).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q is not an http(s) URL", baseURL)
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	if c.cpDir != "" {
		c.cps = tlog.NewCheckpointStore(c.cpDir)
	}
	return c, nil
}

// do sends a request and returns the body of a 2xx answer.
func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		var ne net.Error
		var oe *net.OpError
		var de *net.DNSError
		if errors.As(err, &oe) || errors.As(err, &de) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: couldn't read answer: %v", ErrUnreachable, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return nil, &APIError{Status: resp.StatusCode, Message: msg}
	}
	return b, nil
}

// Sign asks the server to sign statementJSON with the builder key the
// token is scoped to, log it and timestamp it, and returns the bundle JSON.
func (c *Client) Sign(ctx context.Context, statementJSON []byte) ([]byte, error) {
	req, err := json.Marshal(api.SignRequest{Statement: statementJSON})
	if err != nil {
		return nil, fmt.Errorf("statement is not JSON: %w", err)
	}
	b, err := c.do(ctx, http.MethodPost, "/api/v1/sign", "application/json", req)
	if err != nil {
		return nil, err
	}
	resp, err := api.DecodeSignAnswer(b)
	if err != nil {
		return nil, err
	}
	if err := c.checkBundles(ctx, []Found{{Evidence: &api.Evidence{Bundle: resp.Bundle}}}); err != nil {
		return nil, err
	}
	return resp.Bundle, nil
}

// PublicKey returns the PEM public key of the server's builder key name.
func (c *Client) PublicKey(ctx context.Context, name string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/api/v1/keys/"+url.PathEscape(name), "", nil)
}

// TrustedRoot returns the server's Sigstore trusted_root.json.
func (c *Client) TrustedRoot(ctx context.Context) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/api/v1/trusted-root", "", nil)
}

// Push stores a bundle in the server's index and returns its evidence ID;
// existed is true when the same bundle was stored before.
func (c *Client) Push(ctx context.Context, bundleJSON []byte) (id int64, existed bool, err error) {
	if err := c.checkBundles(ctx, []Found{{Evidence: &api.Evidence{Bundle: bundleJSON}}}); err != nil {
		return 0, false, err
	}
	b, err := c.do(ctx, http.MethodPost, "/api/v1/evidence", "application/json", bundleJSON)
	if err != nil {
		return 0, false, err
	}
	resp, err := api.DecodePushAnswer(b)
	if err != nil {
		return 0, false, err
	}
	return resp.ID, resp.Existed, nil
}

// Search returns the evidence matching q.
func (c *Client) Search(ctx context.Context, q api.Query) ([]*api.Evidence, error) {
	found, err := c.SearchBundles(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]*api.Evidence, len(found))
	for i, f := range found {
		out[i] = f.Evidence
	}
	return out, nil
}

// SearchAll returns all the evidence matching q from q.AfterID on, paging
// by MaxLimit (q.Limit is ignored).
func (c *Client) SearchAll(ctx context.Context, q api.Query) ([]*api.Evidence, error) {
	var all []*api.Evidence
	q.Limit = api.MaxLimit
	for {
		page, err := c.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < q.Limit {
			return all, nil
		}
		q.AfterID = page[len(page)-1].ID
	}
}

// Found is one search result: the index record and its bundle, parsed.
type Found struct {
	Evidence *api.Evidence
	// Bundle is Evidence.Bundle parsed as sigstore-go's bundle.UnmarshalJSON
	// parses it (protojson, unknown fields refused), not yet validated; nil
	// when it does not parse.
	Bundle *protobundle.Bundle
}

// SearchBundles is Search that also returns each bundle parsed (on every
// CPU), so that a caller that reads the bundles does not parse them again.
// The entries of the server's log are checked as Search checks them.
//
// A server caps its pages by bytes as well as by count: when a page ends
// early it names where the matches continue (api.SearchResponse.Next),
// and SearchBundles follows until it has q.Limit records (DefaultLimit
// when zero, at most MaxLimit) or the matches end. So, as before, fewer
// than q.Limit records means there are no more.
func (c *Client) SearchBundles(ctx context.Context, q api.Query) ([]Found, error) {
	want := q.Limit
	switch {
	case want <= 0:
		want = api.DefaultLimit
	case want > api.MaxLimit:
		want = api.MaxLimit
	}
	var out []Found
	for len(out) < want {
		q.Limit = want - len(out)
		page, err := c.searchOnce(ctx, q)
		if err != nil {
			return nil, err
		}
		for i := range page.Evidence {
			out = append(out, Found{Evidence: &page.Evidence[i]})
		}
		if page.Next == 0 || len(page.Evidence) == 0 {
			break
		}
		q.AfterID = page.Next
	}
	parseBundles(out)
	if err := c.checkBundles(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// searchOnce reads one page of q, checking that it advances: records in
// increasing ID order after q.AfterID, and a continuation past them, so
// that a server cannot loop its client.
func (c *Client) searchOnce(ctx context.Context, q api.Query) (*api.SearchResponse, error) {
	b, err := c.do(ctx, http.MethodGet, "/api/v1/evidence?"+q.Values().Encode(), "", nil)
	if err != nil {
		return nil, err
	}
	return api.DecodeSearchResponse(b, q.AfterID)
}

// parseBundles parses every bundle of found, on every CPU.
func parseBundles(found []Found) {
	var g errgroup.Group // the jobs never fail
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range found {
		g.Go(func() error {
			pb := new(protobundle.Bundle)
			if protojson.Unmarshal(found[i].Evidence.Bundle, pb) == nil {
				found[i].Bundle = pb
			}
			return nil
		})
	}
	_ = g.Wait()
}

// Log returns a client of the server's transparency log, whose origin and
// key come from the server's trusted root, after checking that the log grew
// consistently from the last checkpoint remembered.
func (c *Client) Log(ctx context.Context) (*tlog.Client, error) {
	lc, err := c.logClient(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.sync(ctx, lc); err != nil {
		return nil, err
	}
	return lc, nil
}

func (c *Client) logClient(ctx context.Context) (*tlog.Client, error) {
	c.mu.Lock()
	lc := c.log
	c.mu.Unlock()
	if lc != nil {
		return lc, nil
	}
	b, err := c.TrustedRoot(ctx)
	if err != nil {
		return nil, err
	}
	tr, err := trust.LoadTrustedRoot(b)
	if err != nil {
		return nil, fmt.Errorf("server's trusted root: %w", err)
	}
	if len(tr.Tlogs) == 0 {
		return nil, errors.New("server's trusted root names no transparency log")
	}
	tl := tr.Tlogs[0]
	u, err := url.Parse(tl.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("server's trusted root: log URL %q: %w", tl.BaseURL, err)
	}
	// The log is read where this client reaches the server; its origin is
	// the host name of the public URL.
	lc, err = tlog.NewClient(c.base, u.Hostname(), tl.PublicKey, c.hc)
	if err != nil {
		return nil, err
	}
	lc.RequireWitnesses(c.wp)
	c.mu.Lock()
	c.log, c.logID = lc, tl.LogID
	c.mu.Unlock()
	return lc, nil
}

// sync fetches the latest checkpoint and checks it against the remembered
// one, then remembers it.
func (c *Client) sync(ctx context.Context, lc *tlog.Client) (*tlog.Checkpoint, error) {
	if c.cps != nil {
		cp, err := lc.Sync(ctx, c.cps)
		if err != nil {
			return nil, fmt.Errorf("server's log: %w", err)
		}
		return cp, nil
	}
	c.mu.Lock()
	last := c.lastCP
	c.mu.Unlock()
	cp, err := lc.Update(ctx, last)
	if err != nil {
		return nil, fmt.Errorf("server's log: %w", err)
	}
	c.mu.Lock()
	if c.lastCP == nil || cp.Size >= c.lastCP.Size {
		c.lastCP = cp
	}
	c.mu.Unlock()
	return cp, nil
}

// checkBundles checks every entry of the server's log in bundles: its
// inclusion proof against its checkpoint, and that checkpoint's consistency
// with the latest one (itself checked against the remembered checkpoint).
func (c *Client) checkBundles(ctx context.Context, found []Found) error {
	var latest *tlog.Checkpoint
	var lc *tlog.Client
	for _, f := range found {
		pb := f.Bundle
		if pb == nil {
			// Unknown fields are not ours to judge (the verifier refuses
			// them), but the log entries of such a bundle are checked.
			pb = new(protobundle.Bundle)
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(f.Evidence.Bundle, pb); err != nil {
				continue // not ours to judge; the server or verifier will refuse it
			}
		}
		for _, tle := range pb.GetVerificationMaterial().GetTlogEntries() {
			if lc == nil {
				var err error
				if lc, err = c.logClient(ctx); err != nil {
					return err
				}
			}
			c.mu.Lock()
			ours := bytes.Equal(tle.GetLogId().GetKeyId(), c.logID)
			c.mu.Unlock()
			if !ours || tle.GetInclusionProof() == nil {
				continue
			}
			if latest == nil {
				var err error
				if latest, err = c.sync(ctx, lc); err != nil {
					return err
				}
			}
			ip := tle.GetInclusionProof()
			cp, err := tlog.ParseCheckpoint([]byte(ip.GetCheckpoint().GetEnvelope()), lc.Verifier())
			if err != nil {
				return fmt.Errorf("%w: entry %d: %v", tlog.ErrInconsistent, tle.GetLogIndex(), err)
			}
			leaf := rfc6962.DefaultHasher.HashLeaf(tle.GetCanonicalizedBody())
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.GetLogIndex()), cp.Size, leaf, ip.GetHashes(), cp.Hash); err != nil {
				return fmt.Errorf("%w: entry %d is not in its checkpoint: %v", tlog.ErrInconsistent, tle.GetLogIndex(), err)
			}
			if cp.Size > latest.Size && lc.WitnessThreshold() > 0 {
				// latest is the newest checkpoint enough witnesses
				// cosigned: the entry must be in it, proven afresh.
				if err := witnessedInclusion(ctx, lc, latest, uint64(ip.GetLogIndex()), leaf); err != nil {
					return err
				}
				continue
			}
			if cp.Size > latest.Size {
				return fmt.Errorf("%w: entry %d's checkpoint of size %d is newer than the log's %d", tlog.ErrRollback, tle.GetLogIndex(), cp.Size, latest.Size)
			}
			var p [][]byte
			if cp.Size < latest.Size && cp.Size > 0 {
				if p, err = lc.ConsistencyProof(ctx, cp.Size, latest.Size); err != nil {
					return fmt.Errorf("server's log: %w", err)
				}
			}
			if err := tlog.VerifyConsistency(cp, latest, p); err != nil {
				return fmt.Errorf("server's log: entry %d: %w", tle.GetLogIndex(), err)
			}
		}
	}
	return nil
}

// witnessedInclusion proves the entry index (leaf hash leaf) is in the
// witnessed checkpoint cp, or fails with tlog.NotWitnessedError if the
// entry is newer than cp.
func witnessedInclusion(ctx context.Context, lc *tlog.Client, cp *tlog.Checkpoint, index uint64, leaf []byte) error {
	if index >= cp.Size {
		return fmt.Errorf("server's log: %w", tlog.NotWitnessedError(index, cp.Size, lc.WitnessThreshold()))
	}
	p, err := lc.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return fmt.Errorf("server's log: %w", err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, leaf, p, cp.Hash); err != nil {
		return fmt.Errorf("%w: entry %d is not in the witnessed checkpoint of size %d: %v", tlog.ErrInconsistent, index, cp.Size, err)
	}
	return nil
}

// AppendDeployment appends a record to the server's deployment history
// (deployer or admin token) and returns its ID. The server sets who
// recorded it from the token.
func (c *Client) AppendDeployment(ctx context.Context, d *api.Deployment) (int64, error) {
	body, err := json.Marshal(d)
	if err != nil {
		return 0, fmt.Errorf("couldn't encode deployment: %w", err)
	}
	b, err := c.do(ctx, http.MethodPost, "/api/v1/deployments", "application/json", body)
	if err != nil {
		return 0, err
	}
	return api.DecodeIDAnswer(b, "deployment")
}

// Deployments returns every deployment record of env ("" for all
// environments) in the order the server recorded them, paging through the
// server's answers.
func (c *Client) Deployments(ctx context.Context, env string) ([]*api.Deployment, error) {
	var out []*api.Deployment
	after := int64(0)
	for {
		v := url.Values{}
		if env != "" {
			v.Set("environment", env)
		}
		v.Set("after", fmt.Sprint(after))
		v.Set("limit", fmt.Sprint(api.MaxLimit))
		b, err := c.do(ctx, http.MethodGet, "/api/v1/deployments?"+v.Encode(), "", nil)
		if err != nil {
			return nil, err
		}
		page, err := api.DecodeDeploymentPage(b, after)
		if err != nil {
			return nil, err
		}
		if n := len(page.Deployments); n > 0 {
			after = page.Deployments[n-1].ID
		}
		out = append(out, page.Deployments...)
		if len(page.Deployments) < api.MaxLimit {
			return out, nil
		}
	}
}
