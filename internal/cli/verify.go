package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/oci"
	"github.com/custody-dev/custody/verify"
)

type verifyFlags struct {
	bundle                                     string
	key, trustedRoot, trustRoot                string
	identity, identityRegexp                   string
	issuer, issuerRegexp                       string
	sourceURI, sourceRef, builderID, predicate string
	maxAge                                     string
	digest                                     string
	jsonOut                                    bool
	server                                     string
	registry                                   registryFlags
	// pack, env, state and packKeys are verify --pack's (pack.Device).
	pack, env, state string
	packKeys         []string
}

func newVerifyCmd(s *streams) *cobra.Command {
	var f verifyFlags
	c := &cobra.Command{
		Use:   "verify [--bundle B] (--key PUB | --trusted-root ROOT --certificate-identity ID --certificate-oidc-issuer ISS) [checks] (ARTIFACT | oci://IMAGE | --digest sha256:HEX)",
		Short: "Verify an artifact against its signed provenance",
		Long: "Checks that the artifact is a subject of the signed statement, that the signature is valid for\n" +
			"the trusted key or a certificate chaining to the trusted root with the given identity, that\n" +
			"transparency-log entries and timestamps verify, and then the provenance checks given as flags.\n" +
			"Works offline. An oci://HOST/REPO[:TAG|@sha256:HEX] image is resolved to its digest once, and the\n" +
			"bundles attached to it in its registry are verified (or --bundle, or --server's for that digest).\n" +
			"Exit 0 only when every check passed; 1 when one failed; 2 for bad input; 3 registry unreachable.",
		Args: argsBetween(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runVerify(c.Context(), s, &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.bundle, "bundle", "", "Sigstore bundle (default ARTIFACT.sigstore.json)")
	fl.StringVar(&f.key, "key", "", "trusted public key (PEM)")
	fl.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json: CAs for keyless, logs and TSAs (with --key too)")
	fl.StringVar(&f.trustRoot, "trust-root", "", "custody trust root (trust/ROOT.md): keys with windows, logs and TSAs; checked against the stored one")
	fl.StringVar(&f.identity, "certificate-identity", "", "expected certificate identity (SAN)")
	fl.StringVar(&f.identityRegexp, "certificate-identity-regexp", "", "expected certificate identity, as a regular expression")
	fl.StringVar(&f.issuer, "certificate-oidc-issuer", "", "expected OIDC issuer of the certificate")
	fl.StringVar(&f.issuerRegexp, "certificate-oidc-issuer-regexp", "", "expected OIDC issuer, as a regular expression")
	fl.StringVar(&f.sourceURI, "source-uri", "", "expected source repository, e.g. github.com/org/repo")
	fl.StringVar(&f.sourceRef, "source-ref", "", "expected source ref, e.g. refs/tags/v1.2.0")
	fl.StringVar(&f.builderID, "builder-id", "", "expected builder ID")
	fl.StringVar(&f.predicate, "predicate-type", "", "expected predicate type (default: SLSA provenance v1 or v0.2)")
	fl.StringVar(&f.maxAge, "max-age", "", "reject statements older than this (e.g. 72h, 30d)")
	fl.StringVar(&f.digest, "digest", "", "artifact digest sha256:HEX (instead of the artifact file)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the verification report as JSON")
	fl.StringVar(&f.server, "server", "", "verify every bundle custody serve holds for the artifact (and the log's consistency)")
	addPackFlags(c, &f)
	addRegistryFlags(fl, &f.registry)
	return c
}

func runVerify(ctx context.Context, s *streams, f *verifyFlags, args []string) error {
	if f.pack != "" {
		return runVerifyPack(ctx, s, f, args)
	}
	var art verify.Artifact
	switch {
	case len(args) == 1 && f.digest != "":
		return usageErr(errors.New("give either an artifact or --digest, not both"), "")
	case len(args) == 1 && oci.IsRef(args[0]):
		im, err := resolveImage(ctx, s, &f.registry, args[0])
		if err != nil {
			return err
		}
		art.Digests = map[string]string{"sha256": im.ref.Hex()}
		if f.server == "" && f.bundle == "" {
			return verifyFromRegistry(ctx, s, f, im)
		}
	case len(args) == 1:
		fi, err := os.Stat(args[0])
		if err != nil {
			return usageErr(fmt.Errorf("couldn't read artifact: %w", err), "")
		}
		if !fi.Mode().IsRegular() {
			return usageErr(fmt.Errorf("artifact %s is not a regular file", args[0]), "")
		}
		art.Path = args[0]
	case f.digest != "":
		d, err := digest.Parse(f.digest)
		if err != nil {
			return usageErr(fmt.Errorf("--digest: %w", err), "use --digest sha256:HEX")
		}
		art.Digests = map[string]string{d.Alg: d.Hex}
	default:
		return usageErr(errors.New("no artifact to verify"), "pass the artifact file, or --digest sha256:HEX")
	}
	if f.server != "" {
		if f.bundle != "" {
			return usageErr(errors.New("give either --bundle or --server, not both"), "")
		}
		tm, err := trustMaterial(f)
		if err != nil {
			return err
		}
		req, err := f.requirements()
		if err != nil {
			return err
		}
		return verifyFromServer(ctx, s, f, art, tm, req)
	}
	bundlePath := f.bundle
	if bundlePath == "" {
		if art.Path == "" {
			return usageErr(errors.New("--bundle is required with --digest"), "")
		}
		bundlePath = art.Path + bundleSuffix
	}
	bundleJSON, err := readLimited(bundlePath, maxBundleBytes)
	if err != nil {
		return usageErr(fmt.Errorf("couldn't read bundle: %w", err), "")
	}
	tm, err := trustMaterial(f)
	if err != nil {
		return err
	}
	req, err := f.requirements()
	if err != nil {
		return err
	}
	rep, err := verify.Verify(ctx, bundleJSON, art, tm, req)
	if err != nil {
		if errors.Is(err, verify.ErrMalformed) {
			return usageErr(fmt.Errorf("%s: %w", bundlePath, err), "")
		}
		return usageErr(err, "")
	}
	if f.jsonOut {
		if err := writeJSON(s.out, rep); err != nil {
			return err
		}
	} else {
		printReport(s.out, rep)
	}
	if !rep.Verified {
		return failErr(fmt.Errorf("verification failed: %s", firstFailure(rep)), "")
	}
	return nil
}

// requirements turns the check flags into verify.Requirements.
func (f *verifyFlags) requirements() (verify.Requirements, error) {
	req := verify.Requirements{
		CertificateIdentity:         f.identity,
		CertificateIdentityRegexp:   f.identityRegexp,
		CertificateOIDCIssuer:       f.issuer,
		CertificateOIDCIssuerRegexp: f.issuerRegexp,
		SourceURI:                   f.sourceURI,
		SourceRef:                   f.sourceRef,
		BuilderID:                   f.builderID,
		PredicateType:               f.predicate,
	}
	if f.maxAge != "" {
		d, err := parseAge(f.maxAge)
		if err != nil {
			return req, usageErr(fmt.Errorf("--max-age: %w", err), "use a duration such as 72h or 30d")
		}
		req.MaxAge = d
	}
	return req, nil
}

// maxBundleBytes bounds how much of a bundle file is read.
const maxBundleBytes = 32 << 20

// readLimited reads a file, refusing ones larger than limit.
func readLimited(path string, limit int64) ([]byte, error) {
	return fsutil.ReadFileLimited(path, limit)
}

// trustMaterial is what verification trusts: a public key, a Sigstore
// trusted root, or both (a key-signed bundle whose log entries and
// timestamps are checked against the root's logs and TSAs).
func trustMaterial(f *verifyFlags) (root.TrustedMaterial, error) {
	var tms root.TrustedMaterialCollection
	if f.trustRoot != "" {
		tm, err := trustRootMaterial(f.trustRoot)
		if err != nil {
			return nil, err
		}
		tms = append(tms, tm)
	}
	if f.trustedRoot != "" {
		tm, err := verify.LoadTrustedRoot(f.trustedRoot)
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't load trusted root: %w", err), "")
		}
		tms = append(tms, tm)
	}
	if f.key != "" {
		pub, err := loadPublicKey(f.key)
		if err != nil {
			return nil, err
		}
		tm, err := verify.PublicKeyMaterial(pub)
		if err != nil {
			return nil, usageErr(err, "")
		}
		tms = append(tms, tm)
	}
	switch len(tms) {
	case 0:
		return nil, usageErr(errors.New("nothing to trust: no --key, --trusted-root or --trust-root"),
			"pass --key release.pub, or --trusted-root trusted_root.json with --certificate-identity and --certificate-oidc-issuer")
	case 1:
		return tms[0], nil
	}
	return tms, nil
}

// parseAge parses a Go duration, also accepting whole days ("30d").
func parseAge(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("invalid duration %q", v)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", v)
	}
	return d, nil
}

// notCheckedHints tells how to make a check that did not run run.
var notCheckedHints = map[string]string{
	verify.CheckSourceURI: "require it with --source-uri",
	verify.CheckBuilderID: "require it with --builder-id",
	verify.CheckTlog:      "check them with a --trusted-root or --trust-root that holds the log",
	verify.CheckTimestamp: "check them with a --trusted-root or --trust-root that holds the timestamp authority",
}

// printReport prints the verdict and every check: PASS, FAIL, or SKIP for
// one that did not run (with how to require it). A verdict that passed with
// checks skipped says so in its first line. The provenance is printed as a
// result only when its signature verified.
func printReport(w io.Writer, rep *verify.Report) {
	switch skipped := rep.NotChecked(); {
	case !rep.Verified:
		fmt.Fprintln(w, "Verification FAILED")
	case len(skipped) > 0:
		fmt.Fprintf(w, "Verified OK, but not checked: %s (see SKIP)\n", strings.Join(skipped, ", "))
	default:
		fmt.Fprintln(w, "Verified OK")
	}
	for _, c := range rep.Checks {
		mark, reason := "PASS", c.Reason
		switch {
		case c.NotChecked:
			mark = "SKIP"
			if h := notCheckedHints[c.Name]; h != "" {
				reason += "; " + h
			}
		case !c.OK:
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %-16s %s\n", mark, c.Name, reason)
	}
	printProvenance(w, rep)
}

func printProvenance(w io.Writer, rep *verify.Report) {
	p := rep.Provenance
	if p == nil {
		return
	}
	if !rep.Passed(verify.CheckSignature) {
		fmt.Fprintln(w, "Provenance not shown: its signature did not verify (custody inspect shows what the bundle claims)")
		return
	}
	fmt.Fprintf(w, "Provenance: builder %s", p.BuilderID)
	if p.SourceURI != "" {
		fmt.Fprintf(w, ", source %s", p.SourceURI)
		if p.SourceRef != "" {
			fmt.Fprintf(w, "@%s", p.SourceRef)
		}
		if p.SourceCommit != "" {
			fmt.Fprintf(w, " (%s)", p.SourceCommit)
		}
	}
	if p.BuildID != "" {
		fmt.Fprintf(w, ", build %s", p.BuildID)
	}
	fmt.Fprintln(w)
}

func firstFailure(rep *verify.Report) string {
	if f := firstFailureExcept(rep, ""); f != "" {
		return f
	}
	return "no check passed"
}

// notProvenance reports whether rep is about a statement that is not SLSA
// provenance while no predicate type was required.
func notProvenance(rep *verify.Report, req verify.Requirements) bool {
	return req.PredicateType == "" && rep.Statement != nil && rep.Provenance == nil
}

// printServerVerdict prints verify --server's result: the provenance
// bundles with their checks, then the evidence that is not provenance (one
// line each: neither a pass nor a failure), then one verdict line.
func printServerVerdict(w io.Writer, v *serverVerdict) {
	fmt.Fprintf(w, "%d bundle(s) for %s; log checkpoint %d consistent with the last one seen\n", len(v.Evidence), v.Digest, v.Checkpoint)
	items := make([]listedEvidence, 0, len(v.Evidence))
	for _, se := range v.Evidence {
		le := listedEvidence{label: strconv.FormatInt(se.ID, 10), rep: se.Report,
			other: se.NotProvenance && se.LogConsistent, ok: se.Report.Verified && se.LogConsistent, redFlags: se.RedFlags}
		if !se.LogConsistent {
			le.problem = fmt.Sprintf("  FAIL  log              %s\n", se.LogProblem)
		}
		items = append(items, le)
	}
	printEvidenceList(w, items, v.Verified)
}

// listedEvidence is one bundle of a verdict over several bundles.
type listedEvidence struct {
	label   string         // what names the bundle: an index ID, a registry source
	rep     *verify.Report //
	other   bool           // not provenance: listed apart, not counted
	ok      bool           // counts as verified
	problem string         // an extra FAIL line, or ""
	// redFlags, for a red flags statement that is other evidence: as
	// verified against the server's audit key; listed apart.
	redFlags *redFlagsSeen
}

// printEvidenceList prints the provenance bundles with their checks, then
// the evidence that is not provenance (one line each: neither a pass nor
// a failure), then one verdict line.
func printEvidenceList(w io.Writer, items []listedEvidence, ok bool) {
	verified, failed := 0, 0
	var other []listedEvidence
	var redFlags []redFlagsSeen
	for _, e := range items {
		if e.other && e.redFlags != nil {
			redFlags = append(redFlags, *e.redFlags)
			continue
		}
		if e.other {
			other = append(other, e)
			continue
		}
		if e.ok {
			verified++
		} else {
			failed++
		}
		fmt.Fprintf(w, "evidence %s: ", e.label)
		printReport(w, e.rep)
		fmt.Fprint(w, e.problem)
	}
	if len(other) > 0 {
		fmt.Fprintln(w, "Other evidence about this artifact (not provenance, not counted):")
	}
	for _, e := range other {
		fmt.Fprintf(w, "  evidence %s: %s, %s\n", e.label, e.rep.Statement.PredicateType, otherStatus(e.rep))
	}
	if len(redFlags) > 0 {
		fmt.Fprintln(w, "Red flags statements about this artifact (the server's findings about its builds, not counted):")
		printRedFlagsSeen(w, "  ", redFlags)
	}
	verdict := "Verification FAILED"
	if ok {
		verdict = "Verified OK"
	}
	fmt.Fprintf(w, "%s: %d provenance bundle(s) verify, %d do not; %d other", verdict, verified, failed, len(other))
	if len(redFlags) > 0 {
		fmt.Fprintf(w, "; %d red flags statement(s)", len(redFlags))
	}
	fmt.Fprintln(w)
}

// otherStatus says whether evidence that is not provenance is signed by a
// trusted key and about the artifact.
func otherStatus(rep *verify.Report) string {
	if rep.Passed(verify.CheckSignature) && rep.Passed(verify.CheckSubject) {
		return "signed and about this artifact"
	}
	if c, ok := failedCheck(rep, verify.CheckSignature); ok {
		return "does not verify with the given trust: " + c
	}
	return "does not verify with the given trust: " + firstFailureExcept(rep, verify.CheckPredicateType)
}

// failedCheck returns "name: reason" of the named check when it failed.
func failedCheck(rep *verify.Report, name string) (string, bool) {
	for _, c := range rep.Checks {
		if c.Name == name && !c.OK {
			return c.Name + ": " + c.Reason, true
		}
	}
	return "", false
}

func firstFailureExcept(rep *verify.Report, skip string) string {
	for _, c := range rep.Checks {
		if !c.OK && c.Name != skip {
			return c.Name + ": " + c.Reason
		}
	}
	return ""
}
