package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/trust"
	"github.com/custody-dev/custody/verify"
)

// Environment variables for talking to custody serve. The token is never a
// flag value, so it stays out of shell history and process listings.
const (
	serverEnv = "CUSTODY_SERVER"
	tokenEnv  = "CUSTODY_TOKEN"
)

// serverURL is --server, or $CUSTODY_SERVER.
func serverURL(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv(serverEnv)
}

// sourceServer is the server of a command that reads either local
// directories (--evidence, --data) or a server: --server, else
// $CUSTODY_SERVER when no local directory was given either. The variable
// never overrides an explicit local choice.
func sourceServer(flag string, local ...string) string {
	if flag != "" {
		return flag
	}
	for _, l := range local {
		if l != "" {
			return ""
		}
	}
	return os.Getenv(serverEnv)
}

// checkpointDir is where clients remember the last checkpoint of each log.
func checkpointDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("couldn't find a config directory for remembered checkpoints: %w", err)
	}
	return filepath.Join(dir, "custody", "checkpoints"), nil
}

// newClient connects to a custody server with the token from
// $CUSTODY_TOKEN, else the session custody login kept for it.
func newClient(url string) (*client.Client, error) {
	return newClientToken(url, sessionToken(url))
}

// newClientTrusting is newClient for a command given a custody trust root
// (--trust-root, "" for none): when the root sets a witness threshold, the
// server's log checkpoints must meet it (client.WithWitnessPolicy). The
// root is only read here: accepting it is the caller's (trustRootMaterial),
// and its threshold can only make the client refuse more.
func newClientTrusting(url, trustRoot string) (*client.Client, error) {
	var opts []client.Option
	if trustRoot != "" {
		d, err := readRoot(trustRoot)
		if err != nil {
			return nil, err
		}
		p, err := d.WitnessPolicy(time.Now())
		if err != nil {
			return nil, usageErr(fmt.Errorf("%s: %w", trustRoot, err), "")
		}
		if p.Explicit {
			opts = append(opts, client.WithWitnessPolicy(p))
		}
	}
	return newClientToken(url, sessionToken(url), opts...)
}

// newClientToken connects to a custody server with bearer token tok.
func newClientToken(url, tok string, opts ...client.Option) (*client.Client, error) {
	if url == "" {
		return nil, usageErr(errors.New("no server given"), "pass --server URL or set CUSTODY_SERVER")
	}
	dir, err := checkpointDir()
	if err != nil {
		return nil, usageErr(err, "")
	}
	c, err := client.New(url, tok, append([]client.Option{client.WithCheckpointDir(dir)}, opts...)...)
	if err != nil {
		return nil, usageErr(fmt.Errorf("bad server URL %q: %w", url, err), "")
	}
	return c, nil
}

// remoteErr maps a client error to an exit code: unreachable services exit
// 3, a forked or rewound log and refusals exit 1, bad requests exit 2.
func remoteErr(err error, what string) error {
	var apiErr *client.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrUnreachable):
		return &exitError{code: ExitUnreachable, err: fmt.Errorf("%s: %w", what, err), hint: "is custody serve running at that address?"}
	case errors.Is(err, trust.ErrWitnesses):
		return failErr(fmt.Errorf("%s: %w", what, err),
			"the trust root's witness threshold is not met yet: run 'custody witness' for each witness, then retry; the client remembers no checkpoint that does not meet it")
	case errors.Is(err, tlog.ErrInconsistent), errors.Is(err, tlog.ErrRollback):
		return failErr(fmt.Errorf("%s: the log is not consistent with the checkpoint this client saw before: %w", what, err),
			"the log may have forked or been rewound; report it, do not trust its answers")
	case errors.As(err, &apiErr):
		switch {
		case apiErr.Status == http.StatusUnauthorized:
			return usageErr(fmt.Errorf("%s: %w", what, err), "set CUSTODY_TOKEN to a token from 'custody token create', or run 'custody login'")
		case apiErr.Status == http.StatusForbidden:
			return usageErr(fmt.Errorf("%s: %w", what, err), "the server refused this token for that; its reason is above (a role that may not, or a key or scope it does not hold)")
		case apiErr.Status == http.StatusConflict:
			return failErr(fmt.Errorf("%s: %w", what, err), "")
		case apiErr.Status >= 500:
			return &exitError{code: ExitUnreachable, err: fmt.Errorf("%s: %w", what, err), hint: "the server is overloaded or failing; retry later"}
		}
		return usageErr(fmt.Errorf("%s: %w", what, err), "")
	}
	return usageErr(fmt.Errorf("%s: %w", what, err), "")
}

func newPushCmd(s *streams) *cobra.Command {
	var server string
	c := &cobra.Command{
		Use:   "push BUNDLE... [--server URL]",
		Short: "Send bundles to the server's evidence index",
		Args:  argsBetween(1, -1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(serverURL(server))
			if err != nil {
				return err
			}
			for _, path := range args {
				b, err := readLimited(path, maxBundleBytes)
				if err != nil {
					return usageErr(fmt.Errorf("couldn't read bundle: %w", err), "")
				}
				id, existed, err := cl.Push(c.Context(), b)
				if err != nil {
					return remoteErr(err, "push "+path)
				}
				state := "indexed"
				if existed {
					state = "already indexed"
				}
				fmt.Fprintf(s.out, "%s: %s as evidence %d\n", path, state, id)
			}
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	return c
}

type searchFlags struct {
	server                                                      string
	digest, name, predicateType, key, identity, builder, source string
	commit, buildID, since, until                               string
	limit                                                       int
	after                                                       int64
	jsonOut                                                     bool
}

func (f *searchFlags) query() (api.Query, error) {
	q := api.Query{
		Digest: f.digest, SubjectName: f.name, PredicateType: f.predicateType, SignerKeyID: f.key,
		SignerIdentity: f.identity, BuilderID: f.builder, SourceURI: f.source, SourceCommit: f.commit,
		BuildID: f.buildID, Limit: f.limit, AfterID: f.after,
	}
	var err error
	if f.key != "" {
		if q.SignerKeyID, err = keyid.Normalize(f.key); err != nil {
			return q, usageErr(fmt.Errorf("--key-id: %w", err), "custody policy key-id KEY.pub prints a key's ID")
		}
	}
	if q.Since, err = parseTimeFlag("--since", f.since); err != nil {
		return q, err
	}
	if q.Until, err = parseTimeFlag("--until", f.until); err != nil {
		return q, err
	}
	return q, nil
}

// parseTimeFlag reads RFC 3339 times, dates, or an age ("24h", "7d" ago).
func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	if d, err := parseAge(v); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, usageErr(fmt.Errorf("%s %q is not a time", name, v), "use RFC 3339 (2026-01-31T12:00:00Z), a date, or an age such as 24h or 7d")
}

func addSearchFlags(c *cobra.Command, f *searchFlags) {
	fl := c.Flags()
	fl.StringVar(&f.server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	fl.StringVar(&f.digest, "digest", "", "artifact digest ALG:HEX")
	fl.StringVar(&f.name, "name", "", "subject name")
	fl.StringVar(&f.predicateType, "predicate-type", "", "predicate type URI")
	fl.StringVar(&f.key, "key-id", "", "signer key ID (hex or base64 SHA-256 of the public key)")
	fl.StringVar(&f.identity, "identity", "", "signer certificate identity")
	fl.StringVar(&f.builder, "builder-id", "", "builder ID")
	fl.StringVar(&f.source, "source-uri", "", "source repository URI")
	fl.StringVar(&f.commit, "commit", "", "source commit")
	fl.StringVar(&f.buildID, "build-id", "", "build ID")
	fl.StringVar(&f.since, "since", "", "only evidence from this time on (RFC 3339, date, or age like 7d)")
	fl.StringVar(&f.until, "until", "", "only evidence before this time")
	fl.IntVar(&f.limit, "limit", 0, "page size (default 100, at most 1000)")
	fl.Int64Var(&f.after, "after", 0, "only evidence with an ID above this (paging)")
	fl.BoolVar(&f.jsonOut, "json", false, "print as JSON")
}

// evidenceJSON prints evidence as the server's API answers it
// (api.Evidence), bundles only withBundle.
func evidenceJSON(w io.Writer, list []*api.Evidence, withBundle bool) error {
	out := make([]api.Evidence, 0, len(list))
	for _, e := range list {
		v := *e
		if !withBundle {
			v.Bundle = nil
		}
		out = append(out, v)
	}
	return writeJSON(w, out)
}

func printEvidence(s *streams, list []*api.Evidence) {
	if len(list) == 0 {
		fmt.Fprintln(s.out, "no evidence found")
		return
	}
	for _, e := range list {
		names := make([]string, 0, len(e.Subjects))
		for _, sub := range e.Subjects {
			names = append(names, sub.Name)
		}
		signer := "signer " + e.SignerKeyID
		switch {
		case e.SignerIdentity != "":
			signer = "signer " + e.SignerIdentity
		case e.SignerKeyID == "":
			signer = "unverified"
		}
		fmt.Fprintf(s.out, "%d  %s  %s  %s", e.ID, e.When().UTC().Format(time.RFC3339), e.PredicateType, signer)
		if e.BuilderID != "" {
			fmt.Fprintf(s.out, "  builder %s", e.BuilderID)
		}
		if e.LogIndex >= 0 {
			fmt.Fprintf(s.out, "  log %d", e.LogIndex)
		}
		fmt.Fprintf(s.out, "  %s\n", strings.Join(names, ","))
	}
}

func newSearchCmd(s *streams) *cobra.Command {
	var f searchFlags
	c := &cobra.Command{
		Use:   "search [--digest D] [--key-id K] [--identity I] [--builder-id B] [--commit C] [--since T] ...",
		Short: "Search the server's evidence index (all conditions must hold)",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			q, err := f.query()
			if err != nil {
				return err
			}
			cl, err := newClient(serverURL(f.server))
			if err != nil {
				return err
			}
			list, err := cl.Search(c.Context(), q)
			if err != nil {
				return remoteErr(err, "search")
			}
			if f.jsonOut {
				return evidenceJSON(s.out, list, false)
			}
			printEvidence(s, list)
			return nil
		},
	}
	addSearchFlags(c, &f)
	return c
}

func newFetchCmd(s *streams) *cobra.Command {
	var server, dgst, outDir string
	var jsonOut bool
	c := &cobra.Command{
		Use:   "fetch --digest sha256:HEX [--out DIR]",
		Short: "Fetch all evidence for an artifact",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if dgst == "" {
				return usageErr(errors.New("--digest is required"), "")
			}
			cl, err := newClient(serverURL(server))
			if err != nil {
				return err
			}
			all, err := cl.SearchAll(c.Context(), api.Query{Digest: dgst})
			if err != nil {
				return remoteErr(err, "fetch")
			}
			if outDir != "" {
				if err := os.MkdirAll(outDir, 0o755); err != nil {
					return usageErr(err, "")
				}
				for _, e := range all {
					p := filepath.Join(outDir, fmt.Sprintf("evidence-%d%s", e.ID, bundleSuffix))
					if err := fsutil.WriteFileAtomic(p, e.Bundle, 0o644); err != nil {
						return usageErr(fmt.Errorf("couldn't write bundle: %w", err), "")
					}
				}
			}
			if jsonOut {
				return evidenceJSON(s.out, all, true)
			}
			printEvidence(s, all)
			if outDir != "" && len(all) > 0 {
				fmt.Fprintf(s.out, "%d bundle(s) written to %s\n", len(all), outDir)
			}
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	c.Flags().StringVar(&dgst, "digest", "", "artifact digest ALG:HEX")
	c.Flags().StringVar(&outDir, "out", "", "write every bundle to this directory")
	c.Flags().BoolVar(&jsonOut, "json", false, "print as JSON, bundles included")
	return c
}

func newLogCmd(s *streams) *cobra.Command {
	var server string
	c := &cobra.Command{
		Use:   "log",
		Short: "Read the transparency log: checkpoint, inclusion and consistency proofs (all verified)",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			return usageErr(errors.New("log needs a subcommand"), "run 'custody log --help'")
		},
	}
	c.PersistentFlags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	sync := func(ctx context.Context) (*tlog.Client, *tlog.Checkpoint, error) { return syncLog(ctx, server) }
	c.AddCommand(newLogCheckpointCmd(s, sync), newLogInclusionCmd(s, sync), newLogConsistencyCmd(s, sync))
	return c
}

// logSyncer fetches the log's checkpoint and checks it against the
// remembered one.
type logSyncer func(ctx context.Context) (*tlog.Client, *tlog.Checkpoint, error)

// syncLog fetches server's checkpoint and checks it against the remembered one.
func syncLog(ctx context.Context, server string) (*tlog.Client, *tlog.Checkpoint, error) {
	cl, err := newClient(serverURL(server))
	if err != nil {
		return nil, nil, err
	}
	lc, err := cl.Log(ctx)
	if err != nil {
		return nil, nil, remoteErr(err, "log")
	}
	dir, err := checkpointDir()
	if err != nil {
		return nil, nil, usageErr(err, "")
	}
	cp, err := lc.Sync(ctx, tlog.NewCheckpointStore(dir))
	if err != nil {
		return nil, nil, remoteErr(err, "log")
	}
	return lc, cp, nil
}

func newLogCheckpointCmd(s *streams, syncLog logSyncer) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the log's current signed checkpoint, after checking it is consistent with the last one seen",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			_, cp, err := syncLog(c.Context())
			if err != nil {
				return err
			}
			_, err = s.out.Write(cp.Note)
			return err
		},
	}
}

func newLogInclusionCmd(s *streams, syncLog logSyncer) *cobra.Command {
	var index, size uint64
	inclusion := &cobra.Command{
		Use:   "inclusion --index N [--size M]",
		Short: "Print and verify the inclusion proof of entry N in the tree of size M (default: current)",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			lc, cp, err := syncLog(c.Context())
			if err != nil {
				return err
			}
			if size == 0 {
				size = cp.Size
			}
			if size != cp.Size {
				return usageErr(errors.New("--size must be the current tree size: only its root hash is verified"), "omit --size")
			}
			if index >= size {
				return usageErr(fmt.Errorf("index %d is not in a tree of size %d", index, size), "")
			}
			proof, err := lc.InclusionProof(c.Context(), index, size)
			if err != nil {
				return remoteErr(err, "inclusion proof")
			}
			fmt.Fprintf(s.out, "inclusion proof for entry %d in tree %d (root %s):\n", index, size, base64.StdEncoding.EncodeToString(cp.Hash))
			_, err = s.out.Write(tlog.MarshalProof(proof))
			return err
		},
	}
	inclusion.Flags().Uint64Var(&index, "index", 0, "log index of the entry")
	inclusion.Flags().Uint64Var(&size, "size", 0, "tree size (default: the current checkpoint)")
	return inclusion
}

func newLogConsistencyCmd(s *streams, syncLog logSyncer) *cobra.Command {
	var oldSize, newSize uint64
	consistency := &cobra.Command{
		Use:   "consistency --old N [--new M]",
		Short: "Print and verify the consistency proof between two tree sizes",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			lc, cp, err := syncLog(c.Context())
			if err != nil {
				return err
			}
			if newSize == 0 {
				newSize = cp.Size
			}
			if oldSize == 0 || oldSize > newSize || newSize > cp.Size {
				return usageErr(fmt.Errorf("need 0 < --old <= --new <= %d", cp.Size), "")
			}
			proof, err := lc.ConsistencyProof(c.Context(), oldSize, newSize)
			if err != nil {
				return remoteErr(err, "consistency proof")
			}
			fmt.Fprintf(s.out, "consistency proof from tree %d to tree %d:\n", oldSize, newSize)
			_, err = s.out.Write(tlog.MarshalProof(proof))
			return err
		},
	}
	consistency.Flags().Uint64Var(&oldSize, "old", 0, "older tree size")
	consistency.Flags().Uint64Var(&newSize, "new", 0, "newer tree size (default: current)")
	return consistency
}

func newWitnessCmd(s *streams) *cobra.Command {
	var server, keyRef, name, stateDir string
	c := &cobra.Command{
		Use:   "witness --key WITNESS.key --name NAME [--server URL]",
		Short: "Check the log grew consistently since this witness last saw it, then cosign its checkpoint",
		Long: "A witness remembers the last checkpoint it cosigned (in --state, default the user's config\n" +
			"directory), fetches the log's checkpoint and a consistency proof, and only when the log grew\n" +
			"consistently adds its Ed25519 cosignature (C2SP tlog-cosignature) and sends it to the log.\n" +
			"A forked or rewound log is reported (exit 1) and not cosigned.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if keyRef == "" || name == "" {
				return usageErr(errors.New("--key and --name are required"), "custody key generate --algorithm ed25519 --out witness")
			}
			sg, release, err := loadSigner(s, keyRef)
			if err != nil {
				return err
			}
			defer release()
			priv, ok := sg.(ed25519.PrivateKey)
			if !ok {
				return usageErr(errors.New("a witness key must be Ed25519"), "custody key generate --algorithm ed25519 --out witness")
			}
			w, err := tlog.NewWitness(name, priv)
			if err != nil {
				return usageErr(err, "")
			}
			cl, err := newClient(serverURL(server))
			if err != nil {
				return err
			}
			if stateDir == "" {
				dir, err := checkpointDir()
				if err != nil {
					return usageErr(err, "")
				}
				stateDir = filepath.Join(filepath.Dir(dir), "witness", name)
			}
			cp, err := witnessOnce(c.Context(), cl, w, tlog.NewCheckpointStore(stateDir), serverURL(server))
			if err != nil {
				return remoteErr(err, "witness")
			}
			fmt.Fprintf(s.out, "cosigned checkpoint of %s at size %d\n", cp.Origin, cp.Size)
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	c.Flags().StringVar(&keyRef, "key", "", "the witness's Ed25519 signing key")
	c.Flags().StringVar(&name, "name", "", "the witness's name (its key name in cosignatures)")
	c.Flags().StringVar(&stateDir, "state", "", "where this witness remembers the last checkpoint it cosigned")
	return c
}

// witnessOnce checks that the log grew consistently since the checkpoint the
// witness remembers, cosigns the new checkpoint, sends the cosignature to the
// log, and only then remembers the new checkpoint.
func witnessOnce(ctx context.Context, cl *client.Client, w *tlog.Witness, st *tlog.CheckpointStore, baseURL string) (*tlog.Checkpoint, error) {
	lc, err := cl.Log(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := lc.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	prev, err := st.Load(lc.Verifier())
	if err != nil {
		return nil, err
	}
	var proof [][]byte
	if prev != nil && prev.Size > 0 && prev.Size < cur.Size {
		if proof, err = lc.ConsistencyProof(ctx, prev.Size, cur.Size); err != nil {
			return nil, err
		}
	}
	cp, line, err := w.Cosign(lc.Verifier(), cur.Note, prev, proof)
	if err != nil {
		return nil, err
	}
	body := append(append([]byte{}, cur.Note...), line...)
	if err := postCosignature(ctx, baseURL, body); err != nil {
		return nil, err
	}
	if err := st.Save(lc.Verifier(), cp, proof); err != nil {
		return nil, err
	}
	return cp, nil
}

// postCosignature sends a cosigned checkpoint to the log (admin token).
func postCosignature(ctx context.Context, baseURL string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+"/cosignature", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if tok := os.Getenv(tokenEnv); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", client.ErrUnreachable, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return &client.APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
	}
	return nil
}

// serverEvidence is one indexed bundle's verdict in verify --server.
type serverEvidence struct {
	ID     int64          `json:"id"`
	Report *verify.Report `json:"report"`
	// LogConsistent is false when the bundle's log entry sits in a tree
	// that is not consistent with the log's current checkpoint.
	LogConsistent bool   `json:"logConsistent"`
	LogProblem    string `json:"logProblem,omitempty"`
	// NotProvenance is true for evidence about the artifact that is not
	// SLSA provenance (an SBOM, a review, a scan) when no predicate type
	// was required: it is listed apart and is neither a pass nor a failure.
	NotProvenance bool `json:"notProvenance,omitempty"`
	// RedFlags is set for a red flags statement (not provenance, so not
	// counted): as verified against the server's audit key.
	RedFlags *redFlagsSeen `json:"redFlags,omitempty"`
}

type serverVerdict struct {
	Verified   bool             `json:"verified"`
	Digest     string           `json:"digest"`
	Checkpoint uint64           `json:"checkpointSize"`
	Evidence   []serverEvidence `json:"evidence"`
}

// verifyFromServer fetches every bundle the server holds for the artifact,
// checks the log is consistent with the checkpoint this client remembers,
// checks every bundle's log entry against the current checkpoint, and
// verifies every bundle. It passes when at least one bundle verifies fully
// and no log check failed.
func verifyFromServer(ctx context.Context, s *streams, f *verifyFlags, art verify.Artifact, tm root.TrustedMaterial, req verify.Requirements) error {
	cl, err := newClientTrusting(serverURL(f.server), f.trustRoot)
	if err != nil {
		return err
	}
	dg := ""
	for alg, hx := range art.Digests {
		dg = alg + ":" + hx
	}
	if dg == "" {
		d, err := digest.File(art.Path)
		if err != nil {
			return usageErr(fmt.Errorf("couldn't hash artifact: %w", err), "")
		}
		dg = d.String()
	}
	lc, err := cl.Log(ctx)
	if err != nil {
		return remoteErr(err, "log")
	}
	dir, err := checkpointDir()
	if err != nil {
		return usageErr(err, "")
	}
	cur, err := lc.Sync(ctx, tlog.NewCheckpointStore(dir))
	if err != nil {
		return remoteErr(err, "log")
	}
	all, err := cl.SearchAll(ctx, api.Query{Digest: dg})
	if err != nil {
		return remoteErr(err, "fetch evidence")
	}
	v := serverVerdict{Digest: dg, Checkpoint: cur.Size}
	logOK := true
	var at *auditTrust
	for _, e := range all {
		rep, err := verify.Verify(ctx, e.Bundle, art, tm, req)
		if err != nil {
			rep = &verify.Report{Checks: []verify.Check{{Name: "bundle", Reason: err.Error()}}}
		}
		se := serverEvidence{ID: e.ID, Report: rep, LogConsistent: true, NotProvenance: notProvenance(rep, req)}
		if se.NotProvenance && rep.Statement.PredicateType == attest.PredicateRedFlags {
			if at == nil {
				a := serverAuditTrust(ctx, f.trustRoot, cl)
				at = &a
			}
			rf := at.see(ctx, gate.Bundle{Name: fmt.Sprintf("server:%d", e.ID), JSON: e.Bundle}, dg, "verify counts provenance only")
			se.RedFlags = &rf
		}
		if problem := checkEntryConsistency(ctx, lc, cur, e.Bundle); problem != "" {
			se.LogConsistent, se.LogProblem = false, problem
			logOK = false
		}
		if rep.Verified && se.LogConsistent {
			v.Verified = true
		}
		v.Evidence = append(v.Evidence, se)
	}
	v.Verified = v.Verified && logOK
	if f.jsonOut {
		if err := writeJSON(s.out, v); err != nil {
			return err
		}
	} else {
		printServerVerdict(s.out, &v)
	}
	switch {
	case len(all) == 0:
		return failErr(fmt.Errorf("no evidence for %s on the server", dg), "")
	case !logOK:
		return failErr(errors.New("verification failed: a log entry is not consistent with the log's checkpoint"), "")
	case !v.Verified:
		return failErr(errors.New("verification failed: no bundle on the server verifies"), "")
	}
	return nil
}

// checkEntryConsistency checks that the checkpoint in each of the bundle's
// entries from this log is consistent with cur. It returns "" when they are
// (or the bundle carries no entry of this log), else what is wrong.
func checkEntryConsistency(ctx context.Context, lc *tlog.Client, cur *tlog.Checkpoint, bundleJSON []byte) string {
	var b bundle.Bundle
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		return "bundle does not parse: " + err.Error()
	}
	entries, err := b.TlogEntries()
	if err != nil {
		return "log entries do not parse: " + err.Error()
	}
	origin := lc.Verifier().Name()
	for _, e := range entries {
		env := e.TransparencyLogEntry().GetInclusionProof().GetCheckpoint().GetEnvelope()
		if env == "" || !strings.HasPrefix(env, origin+"\n") {
			continue // another log's entry: verify checks it against the trusted root
		}
		cp, err := tlog.ParseCheckpoint([]byte(env), lc.Verifier())
		if err != nil {
			return "entry checkpoint does not verify with the log's key: " + err.Error()
		}
		if cp.Size > cur.Size {
			return fmt.Sprintf("entry checkpoint of size %d is ahead of the log's checkpoint %d", cp.Size, cur.Size)
		}
		var proof [][]byte
		if cp.Size < cur.Size {
			if proof, err = lc.ConsistencyProof(ctx, cp.Size, cur.Size); err != nil {
				return "couldn't get a consistency proof: " + err.Error()
			}
		}
		if err := tlog.VerifyConsistency(cp, cur, proof); err != nil {
			return err.Error()
		}
	}
	return ""
}
