package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/fsutil"
)

type attestFlags struct {
	key, predicateType, predicate, bundle string
	subjects                              []string
	force, jsonOut                        bool
	registry                              registryFlags
}

func newAttestCmd(s *streams) *cobra.Command {
	var f attestFlags
	c := &cobra.Command{
		Use:   "attest --key KEY --predicate-type URI --predicate FILE [--bundle OUT] (ARTIFACT | oci://IMAGE)...",
		Short: "Sign any in-toto predicate about one or more artifacts",
		Long: "Signs an in-toto statement whose subjects are the given artifacts (and --subject NAME@sha256:HEX)\n" +
			"and whose predicate is the JSON in FILE. Writes one bundle: --bundle, or ARTIFACT.att.sigstore.json\n" +
			"for a single artifact. An oci://HOST/REPO[:TAG|@sha256:HEX] image is resolved to its digest\n" +
			"once and the bundle is attached to it in its registry (OCI 1.1 referrer, Sigstore bundle v0.3).",
		Args: argsBetween(0, -1),
		RunE: func(c *cobra.Command, args []string) error {
			return runAttest(c.Context(), s, &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.key, "key", "", "signing key: path to an encrypted key file")
	fl.StringVar(&f.predicateType, "predicate-type", "", "predicate type URI, e.g. https://cyclonedx.org/bom")
	fl.StringVar(&f.predicate, "predicate", "", "file holding the predicate (a JSON object)")
	fl.StringVar(&f.bundle, "bundle", "", "where to write the bundle")
	fl.StringArrayVar(&f.subjects, "subject", nil, "non-file subject NAME@sha256:HEX (repeatable)")
	fl.BoolVar(&f.force, "force", false, "overwrite an existing bundle")
	fl.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
	addRegistryFlags(fl, &f.registry)
	return c
}

func runAttest(ctx context.Context, s *streams, f *attestFlags, artifacts []string) error {
	switch {
	case f.key == "":
		return usageErr(errors.New("--key is required"), "")
	case f.predicateType == "":
		return usageErr(errors.New("--predicate-type is required"), "")
	case f.predicate == "":
		return usageErr(errors.New("--predicate is required"), "")
	case len(artifacts) == 0 && len(f.subjects) == 0:
		return usageErr(errors.New("no artifact to attest"), "name artifact files or --subject NAME@sha256:HEX")
	}
	files, images := splitImages(artifacts)
	out := f.bundle
	if out == "" && len(images) == 0 {
		if len(artifacts) != 1 {
			return usageErr(errors.New("--bundle is required with more than one subject"), "")
		}
		out = artifacts[0] + ".att" + bundleSuffix
	}
	if !f.force && out != "" {
		if _, err := os.Stat(out); err == nil {
			return usageErr(fmt.Errorf("bundle %s already exists", out), "pass --force to replace it, or --bundle elsewhere")
		}
	}
	predJSON, err := readLimited(f.predicate, attest.MaxStatementBytes)
	if err != nil {
		return usageErr(fmt.Errorf("couldn't read predicate: %w", err), "")
	}
	var pred map[string]any
	if err := json.Unmarshal(predJSON, &pred); err != nil || pred == nil {
		return usageErr(fmt.Errorf("predicate %s is not a JSON object", f.predicate), "")
	}
	var subjects []attest.Subject
	digests, err := digest.Files(ctx, files, 0)
	if err != nil {
		return usageErr(fmt.Errorf("couldn't hash artifact: %w", err), "")
	}
	for i, d := range digests {
		subjects = append(subjects, attest.Subject{Name: files[i], Digest: map[string]string{d.Alg: d.Hex}})
	}
	ims, err := resolveImages(ctx, s, &f.registry, images)
	if err != nil {
		return err
	}
	for _, im := range ims {
		subjects = append(subjects, im.subject())
	}
	for _, v := range f.subjects {
		sub, err := build.ParseSubject(v)
		if err != nil {
			return usageErr(fmt.Errorf("--subject %q: %w", v, err), "use NAME@sha256:HEX")
		}
		subjects = append(subjects, sub)
	}
	sg, release, err := loadSigner(s, f.key)
	if err != nil {
		return err
	}
	defer release()
	b, err := signStatement(ctx, keySigner(sg), subjects, f.predicateType, json.RawMessage(predJSON))
	if err != nil {
		return err
	}
	if out != "" {
		if err := fsutil.WriteFileAtomic(out, b, 0o644); err != nil {
			return usageErr(fmt.Errorf("couldn't write bundle: %w", err), "")
		}
	}
	attached, err := attachAll(ctx, ims, b)
	if err != nil {
		return err
	}
	if f.jsonOut {
		return writeJSON(s.out, attestResult{SignedBundle: build.SignedBundle{Bundle: out, Subjects: subjects}, Attached: attached})
	}
	if out != "" {
		fmt.Fprintf(s.out, "attestation %s about %d subject(s) written to %s\n", f.predicateType, len(subjects), out)
	}
	for _, a := range attached {
		fmt.Fprintf(s.out, "attestation %s attached to %s as referrer %s\n", f.predicateType, a.Image, a.Referrer)
	}
	return nil
}
