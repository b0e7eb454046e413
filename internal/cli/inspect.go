package cli

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/keyid"
)

// inspection is the human and JSON view of a bundle. Nothing in it is verified.
type inspection struct {
	Verified      bool                    `json:"verified"` // always false: inspect does not verify
	MediaType     string                  `json:"mediaType"`
	KeyHint       string                  `json:"keyHint,omitempty"`
	Certificate   *certView               `json:"certificate,omitempty"`
	Content       string                  `json:"content"` // dsse or messageSignature
	PayloadType   string                  `json:"payloadType,omitempty"`
	Signatures    int                     `json:"signatures"`
	MessageDigest string                  `json:"messageDigest,omitempty"`
	Statement     *attest.Statement       `json:"statement,omitempty"`
	Provenance    *attest.ProvenanceFacts `json:"provenance,omitempty"`
	TlogEntries   []tlogView              `json:"tlogEntries,omitempty"`
	Timestamps    []time.Time             `json:"timestamps,omitempty"`
}

type certView struct {
	Identity  string    `json:"identity"`
	Issuer    string    `json:"oidcIssuer,omitempty"`
	CA        string    `json:"ca"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Workflow  string    `json:"sourceRepository,omitempty"`
	SourceRef string    `json:"sourceRef,omitempty"`
}

type tlogView struct {
	LogIndex       int64     `json:"logIndex"`
	LogID          string    `json:"logId"`
	Kind           string    `json:"kind"`
	IntegratedTime time.Time `json:"integratedTime,omitzero"`
	InclusionProof bool      `json:"inclusionProof"`
	Promise        bool      `json:"inclusionPromise"`
}

func newInspectCmd(s *streams) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "inspect BUNDLE",
		Short: "Show what a Sigstore bundle contains (does not verify it)",
		Args:  argsBetween(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			raw, err := readLimited(args[0], maxBundleBytes)
			if err != nil {
				return usageErr(fmt.Errorf("couldn't read bundle: %w", err), "")
			}
			in, err := inspectBundle(raw)
			if err != nil {
				return usageErr(fmt.Errorf("%s: %w", args[0], err), "")
			}
			if jsonOut {
				return writeJSON(s.out, in)
			}
			printInspection(s.out, args[0], in)
			return nil
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print as JSON")
	return c
}

func inspectBundle(raw []byte) (*inspection, error) {
	var b bundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("not a valid Sigstore bundle: %w", err)
	}
	in := &inspection{MediaType: b.GetMediaType()}
	vc, err := b.VerificationContent()
	if err != nil {
		return nil, fmt.Errorf("bundle has no verification material: %w", err)
	}
	if cert := vc.Certificate(); cert != nil {
		in.Certificate = viewCert(cert)
	} else if pk := vc.PublicKey(); pk != nil {
		in.KeyHint = pk.Hint()
	}
	if env := b.GetDsseEnvelope(); env != nil {
		in.Content = "dsse"
		in.PayloadType = env.GetPayloadType()
		in.Signatures = len(env.GetSignatures())
		if env.GetPayloadType() == attest.PayloadType {
			if st, err := attest.ParseStatement(env.GetPayload()); err == nil {
				in.Statement = st
				if p, err := attest.ParseProvenance(st.PredicateType, st.Predicate); err == nil {
					in.Provenance = p
				}
			}
		}
	} else if ms := b.GetMessageSignature(); ms != nil {
		in.Content = "messageSignature"
		in.Signatures = 1
		if d := ms.GetMessageDigest(); d != nil {
			in.MessageDigest = fmt.Sprintf("%s:%s", d.GetAlgorithm(), hex.EncodeToString(d.GetDigest()))
		}
	} else {
		return nil, errNoContent
	}
	entries, err := b.TlogEntries()
	if err != nil {
		return nil, fmt.Errorf("couldn't read transparency log entries: %w", err)
	}
	for _, e := range entries {
		tle := e.TransparencyLogEntry()
		v := tlogView{
			LogIndex:       e.LogIndex(),
			LogID:          hex.EncodeToString(tle.GetLogId().GetKeyId()),
			Kind:           tle.GetKindVersion().GetKind() + "/" + tle.GetKindVersion().GetVersion(),
			InclusionProof: e.HasInclusionProof(),
			Promise:        e.HasInclusionPromise(),
		}
		if t := e.IntegratedTime(); !t.IsZero() && t.Unix() != 0 {
			v.IntegratedTime = t.UTC()
		}
		in.TlogEntries = append(in.TlogEntries, v)
	}
	if tss, err := b.Timestamps(); err == nil {
		for _, ts := range tss {
			// Bundles carry the TimeStampResp (what Sigstore TSAs return);
			// older ones the bare token.
			parsed, err := timestamp.ParseResponse(ts)
			if err != nil {
				parsed, err = timestamp.Parse(ts)
			}
			if err == nil {
				in.Timestamps = append(in.Timestamps, parsed.Time.UTC())
			}
		}
	}
	return in, nil
}

func viewCert(cert *x509.Certificate) *certView {
	v := &certView{CA: cert.Issuer.String(), NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC()}
	if sum, err := certificate.SummarizeCertificate(cert); err == nil {
		v.Identity = sum.SubjectAlternativeName
		v.Issuer = sum.Issuer
		v.Workflow = sum.SourceRepositoryURI
		v.SourceRef = sum.SourceRepositoryRef
	}
	return v
}

func printInspection(w io.Writer, name string, in *inspection) {
	fmt.Fprintf(w, "%s (NOT VERIFIED: use 'custody verify')\n", name)
	fmt.Fprintf(w, "  media type:   %s\n", in.MediaType)
	switch {
	case in.Certificate != nil:
		c := in.Certificate
		fmt.Fprintf(w, "  certificate:  %s\n", c.Identity)
		if c.Issuer != "" {
			fmt.Fprintf(w, "  oidc issuer:  %s\n", c.Issuer)
		}
		fmt.Fprintf(w, "  issued by:    %s, valid %s to %s\n", c.CA, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	case in.KeyHint != "":
		fmt.Fprintf(w, "  public key:   %s\n", keyid.Display(in.KeyHint))
	}
	fmt.Fprintf(w, "  content:      %s, %d signature(s)\n", in.Content, in.Signatures)
	if in.MessageDigest != "" {
		fmt.Fprintf(w, "  digest:       %s\n", in.MessageDigest)
	}
	if st := in.Statement; st != nil {
		fmt.Fprintf(w, "  predicate:    %s\n", st.PredicateType)
		for _, sub := range st.Subject {
			for alg, d := range sub.Digest {
				fmt.Fprintf(w, "  subject:      %s %s:%s\n", sub.Name, alg, d)
			}
		}
	} else if in.PayloadType != "" {
		fmt.Fprintf(w, "  payload type: %s\n", in.PayloadType)
	}
	if p := in.Provenance; p != nil {
		fmt.Fprintf(w, "  builder:      %s\n", p.BuilderID)
		if p.SourceURI != "" {
			fmt.Fprintf(w, "  source:       %s %s %s\n", p.SourceURI, p.SourceRef, p.SourceCommit)
		}
		if p.BuildID != "" {
			fmt.Fprintf(w, "  build id:     %s\n", p.BuildID)
		}
		if !p.StartedOn.IsZero() {
			fmt.Fprintf(w, "  built:        %s to %s\n", p.StartedOn.Format(time.RFC3339), p.FinishedOn.Format(time.RFC3339))
		}
		if p.Dirty {
			fmt.Fprintf(w, "  dirty tree:   yes (built with uncommitted changes)\n")
		}
	}
	for _, e := range in.TlogEntries {
		fmt.Fprintf(w, "  tlog entry:   index %d, log %s, %s", e.LogIndex, e.LogID, e.Kind)
		if !e.IntegratedTime.IsZero() {
			fmt.Fprintf(w, ", integrated %s", e.IntegratedTime.Format(time.RFC3339))
		}
		fmt.Fprintf(w, ", proof %v\n", e.InclusionProof)
	}
	for _, t := range in.Timestamps {
		fmt.Fprintf(w, "  timestamp:    %s (RFC 3161)\n", t.Format(time.RFC3339))
	}
}

var errNoContent = errors.New("bundle has neither a DSSE envelope nor a message signature")
