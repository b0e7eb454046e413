package ca

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
)

// Fulcio's certificate extensions (docs/oid-info.md of sigstore/fulcio).
// Values of .1 to .6 are raw strings; from .8 on they are DER UTF8Strings.
var (
	oidIssuer                 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidGitHubWorkflowTrigger  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 2}
	oidGitHubWorkflowSHA      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 3}
	oidGitHubWorkflowName     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 4}
	oidGitHubWorkflowRepo     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 5}
	oidGitHubWorkflowRef      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 6}
	oidIssuerV2               = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
	oidBuildSignerURI         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 9}
	oidBuildSignerDigest      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 10}
	oidRunnerEnvironment      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 11}
	oidSourceRepoURI          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 12}
	oidSourceRepoDigest       = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 13}
	oidSourceRepoRef          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 14}
	oidSourceRepoIdentifier   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 15}
	oidSourceRepoOwnerURI     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 16}
	oidSourceRepoOwnerID      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 17}
	oidBuildConfigURI         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 18}
	oidBuildConfigDigest      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 19}
	oidBuildTrigger           = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 20}
	oidRunInvocationURI       = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 21}
	oidSourceRepoVisibility   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 22}
	oidCTPoison               = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	oidCTSignedTimestampsList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
)

// renderExtensions encodes e as Fulcio does: the issuer always (both the
// deprecated raw .1 and the DER .8), every other field when set. It is
// parsed back by sigstore-go's certificate.ParseExtensions (tested).
func renderExtensions(e certificate.Extensions) ([]pkix.Extension, error) {
	if e.Issuer == "" {
		return nil, fmt.Errorf("certificate extensions need an issuer")
	}
	out := []pkix.Extension{{Id: oidIssuer, Value: []byte(e.Issuer)}}
	for _, f := range []struct {
		oid asn1.ObjectIdentifier
		v   string
		raw bool // the deprecated .2 to .6 hold raw bytes, the rest DER
	}{
		{oidGitHubWorkflowTrigger, e.GithubWorkflowTrigger, true},
		{oidGitHubWorkflowSHA, e.GithubWorkflowSHA, true},
		{oidGitHubWorkflowName, e.GithubWorkflowName, true},
		{oidGitHubWorkflowRepo, e.GithubWorkflowRepository, true},
		{oidGitHubWorkflowRef, e.GithubWorkflowRef, true},
		{oidIssuerV2, e.Issuer, false},
		{oidBuildSignerURI, e.BuildSignerURI, false},
		{oidBuildSignerDigest, e.BuildSignerDigest, false},
		{oidRunnerEnvironment, e.RunnerEnvironment, false},
		{oidSourceRepoURI, e.SourceRepositoryURI, false},
		{oidSourceRepoDigest, e.SourceRepositoryDigest, false},
		{oidSourceRepoRef, e.SourceRepositoryRef, false},
		{oidSourceRepoIdentifier, e.SourceRepositoryIdentifier, false},
		{oidSourceRepoOwnerURI, e.SourceRepositoryOwnerURI, false},
		{oidSourceRepoOwnerID, e.SourceRepositoryOwnerIdentifier, false},
		{oidBuildConfigURI, e.BuildConfigURI, false},
		{oidBuildConfigDigest, e.BuildConfigDigest, false},
		{oidBuildTrigger, e.BuildTrigger, false},
		{oidRunInvocationURI, e.RunInvocationURI, false},
		{oidSourceRepoVisibility, e.SourceRepositoryVisibilityAtSigning, false},
	} {
		switch {
		case f.v == "":
		case f.raw:
			out = append(out, pkix.Extension{Id: f.oid, Value: []byte(f.v)})
		default:
			val, err := asn1.MarshalWithParams(f.v, "utf8")
			if err != nil {
				return nil, fmt.Errorf("couldn't encode extension %s: %w", f.oid, err)
			}
			out = append(out, pkix.Extension{Id: f.oid, Value: val})
		}
	}
	return out, nil
}
