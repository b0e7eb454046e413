package main

import (
	"crypto"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/trust"
	"github.com/custody-dev/custody/verify"
)

// flags are custody verify's flags, and --pack's.
type flags struct {
	bundle, key, trustedRoot, trustRoot        string
	identity, identityRegexp                   string
	issuer, issuerRegexp                       string
	sourceURI, sourceRef, builderID, predicate string
	maxAge, digest, server                     string
	jsonOut                                    bool
	pack, env, state                           string
	packKeys                                   stringList
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string, stderr io.Writer) (*flags, []string, error) {
	var f flags
	fs := flag.NewFlagSet("custody-verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.bundle, "bundle", "", "Sigstore bundle (default ARTIFACT.sigstore.json)")
	fs.StringVar(&f.key, "key", "", "trusted public key (PEM)")
	fs.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json: CAs, logs and TSAs")
	fs.StringVar(&f.trustRoot, "trust-root", "", "custody trust root: its keys and logs (with --pack: the device's anchor)")
	fs.StringVar(&f.identity, "certificate-identity", "", "expected certificate identity (SAN)")
	fs.StringVar(&f.identityRegexp, "certificate-identity-regexp", "", "expected certificate identity, as a regular expression")
	fs.StringVar(&f.issuer, "certificate-oidc-issuer", "", "expected OIDC issuer of the certificate")
	fs.StringVar(&f.issuerRegexp, "certificate-oidc-issuer-regexp", "", "expected OIDC issuer, as a regular expression")
	fs.StringVar(&f.sourceURI, "source-uri", "", "expected source repository")
	fs.StringVar(&f.sourceRef, "source-ref", "", "expected source ref")
	fs.StringVar(&f.builderID, "builder-id", "", "expected builder ID")
	fs.StringVar(&f.predicate, "predicate-type", "", "expected predicate type (default: SLSA provenance v1 or v0.2)")
	fs.StringVar(&f.maxAge, "max-age", "", "reject statements older than this (e.g. 72h, 30d)")
	fs.StringVar(&f.digest, "digest", "", "artifact digest sha256:HEX (instead of the artifact file)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
	fs.StringVar(&f.server, "server", "", "not in the lean verifier (no network): use custody verify --server")
	fs.StringVar(&f.pack, "pack", "", "evidence pack (custody pack): decide offline with the policy it carries")
	fs.StringVar(&f.env, "env", "", "with --pack: the environment the artifact is to enter")
	fs.StringVar(&f.state, "state", "", "with --pack: the device's state file (default $XDG_STATE_HOME/custody/edge-state.json)")
	fs.Var(&f.packKeys, "pack-key", "with --pack: a pinned pack signer (PEM), repeatable")
	if err := fs.Parse(args); err != nil {
		return nil, nil, usage(err, "custody-verify -h lists the flags")
	}
	if f.server != "" {
		return nil, nil, usage(errors.New("the lean verifier does not reach servers"), "use the full binary: custody verify --server, or carry the evidence in a pack")
	}
	if fs.NArg() > 1 {
		return nil, nil, usage(errors.New("more than one artifact, or a flag after the artifact"), "give the flags first, then one artifact")
	}
	return &f, fs.Args(), nil
}

// artifactDigest is the "sha256:HEX" of the artifact file or --digest.
func (f *flags) artifactDigest(args []string) (string, error) {
	switch {
	case len(args) == 1 && f.digest != "":
		return "", usage(errors.New("give either an artifact or --digest, not both"), "")
	case len(args) == 1:
		d, err := digest.File(args[0])
		if err != nil {
			return "", usage(fmt.Errorf("couldn't hash artifact: %w", err), "")
		}
		return d.String(), nil
	case f.digest != "":
		d, err := digest.Parse(f.digest)
		if err != nil || d.Alg != "sha256" {
			return "", usage(fmt.Errorf("--digest %q is not sha256:HEX", f.digest), "")
		}
		return d.String(), nil
	}
	return "", usage(errors.New("no artifact"), "pass the artifact file, or --digest sha256:HEX")
}

func loadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := fsutil.ReadFileLimited(path, 64<<10)
	if err != nil {
		return nil, usage(fmt.Errorf("couldn't read key: %w", err), "")
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(b)
	if err != nil {
		return nil, usage(fmt.Errorf("%s: %w", path, err), "")
	}
	return pub, nil
}

// extraTrust is --key (found by its key ID, as policy check takes keys)
// and --trusted-root as trust material (nil if none).
func (f *flags) extraTrust() (root.TrustedMaterial, error) {
	return f.trust(func(pub crypto.PublicKey) (root.TrustedMaterial, error) { return gate.KeyMaterial(pub) })
}

// trust is --key (as keyMaterial makes it) and --trusted-root.
func (f *flags) trust(keyMaterial func(crypto.PublicKey) (root.TrustedMaterial, error)) (root.TrustedMaterial, error) {
	var tms root.TrustedMaterialCollection
	if f.key != "" {
		pub, err := loadPublicKey(f.key)
		if err != nil {
			return nil, err
		}
		tm, err := keyMaterial(pub)
		if err != nil {
			return nil, usage(err, "")
		}
		tms = append(tms, tm)
	}
	if f.trustedRoot != "" {
		tm, err := verify.LoadTrustedRoot(f.trustedRoot)
		if err != nil {
			return nil, usage(fmt.Errorf("couldn't load trusted root: %w", err), "")
		}
		tms = append(tms, tm)
	}
	if len(tms) == 0 {
		return nil, nil
	}
	return tms, nil
}

// trustRootMaterial reads a custody trust root signed by its own admins.
func trustRootMaterial(path string) (root.TrustedMaterial, error) {
	b, err := fsutil.ReadFileLimited(path, trust.MaxDocumentBytes)
	if err != nil {
		return nil, usage(fmt.Errorf("couldn't read trust root: %w", err), "")
	}
	d, err := trust.ParseDocument(b)
	if err == nil {
		err = trust.VerifyDocument(d, time.Now())
	}
	if err != nil {
		return nil, usage(fmt.Errorf("trust root %s: %w", path, err), "")
	}
	return d.Root.TrustedMaterial()
}

func (f *flags) requirements() (verify.Requirements, error) {
	req := verify.Requirements{
		CertificateIdentity: f.identity, CertificateIdentityRegexp: f.identityRegexp,
		CertificateOIDCIssuer: f.issuer, CertificateOIDCIssuerRegexp: f.issuerRegexp,
		SourceURI: f.sourceURI, SourceRef: f.sourceRef, BuilderID: f.builderID, PredicateType: f.predicate,
	}
	if f.maxAge == "" {
		return req, nil
	}
	v := f.maxAge
	mult := time.Duration(1)
	if n, ok := strings.CutSuffix(v, "d"); ok {
		v, mult = n+"h", 24
		if _, err := strconv.Atoi(n); err != nil {
			return req, usage(fmt.Errorf("--max-age %q is not a duration", f.maxAge), "")
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return req, usage(fmt.Errorf("--max-age %q is not a duration", f.maxAge), "use e.g. 72h or 30d")
	}
	req.MaxAge = d * mult
	return req, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
