package attest

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseProvenanceCorpus(t *testing.T) {
	stmts := readStatements(t)
	delegator := func(ref, commit, ver string) ProvenanceFacts {
		return ProvenanceFacts{
			BuilderID:    "https://github.com/slsa-framework/example-trw/.github/workflows/builder_high-perms_slsa3.yml@refs/tags/" + ver,
			BuildType:    "https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0",
			SourceURI:    "git+https://github.com/slsa-framework/example-package",
			SourceRef:    ref,
			SourceCommit: commit,
		}
	}
	tests := []struct {
		file    string
		want    ProvenanceFacts
		buildID string // prefix
	}{
		{"delegator-v1.10.0-push-v13.0.30.statement.json", delegator("refs/tags/v13.0.30", "4e383a8215c979d61c6afd2e125cb2f559090adf", "v1.10.0"), "https://github.com/slsa-framework/example-package/actions/runs/"},
		{"delegator-v1.10.0-workflow_dispatch.statement.json", delegator("refs/heads/main", "4e383a8215c979d61c6afd2e125cb2f559090adf", "v1.10.0"), "https://github.com/slsa-framework/example-package/actions/runs/"},
		{"delegator-v2.0.0-push-v13.0.30.statement.json", delegator("refs/tags/v13.0.30", "693130cb6cb840a7bc9cb18c6510d536a95dc7e6", "v2.0.0"), "https://github.com/slsa-framework/example-package/actions/runs/8791219607"},
		{"delegator-v2.0.0-workflow_dispatch.statement.json", delegator("refs/heads/main", "693130cb6cb840a7bc9cb18c6510d536a95dc7e6", "v2.0.0"), "https://github.com/slsa-framework/example-package/actions/runs/"},
		{"dsse.statement.json", ProvenanceFacts{
			BuilderID:    "https://github.com/npm/slsa-provenance@0.0.1",
			BuildType:    "https://github.com/npm/slsa-provenance/gha@v0",
			SourceURI:    "git+https://github.com/github/slsa-provenance",
			SourceRef:    "refs/heads/demo",
			SourceCommit: "29cff3dd65f780c3601bd457acb6fe4e5931c825",
		}, "3024091546-4"},
		{"sigstore.js@2.0.0-provenance.statement.json", ProvenanceFacts{
			BuilderID:    "https://github.com/actions/runner/github-hosted",
			BuildType:    BuildTypeGitHubWorkflow,
			SourceURI:    "git+https://github.com/sigstore/sigstore-js",
			SourceRef:    "refs/heads/main",
			SourceCommit: "f0b49a04e5a62250e0f60fb128004a73110fe311",
		}, "https://github.com/sigstore/sigstore-js/actions/runs/5904696764/attempts/1"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, ok := stmts[tt.file]
			if !ok {
				t.Fatalf("missing testdata %s", tt.file)
			}
			s, err := ParseStatement(b)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseProvenance(s.PredicateType, s.Predicate)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(f.BuildID, tt.buildID) {
				t.Errorf("BuildID = %q, want prefix %q", f.BuildID, tt.buildID)
			}
			got := *f
			got.BuildID = ""
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("facts = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

func TestParseProvenanceV02Times(t *testing.T) {
	in := `{"builder":{"id":"https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.2.0"},
	"buildType":"https://github.com/slsa-framework/slsa-github-generator/generic@v1",
	"invocation":{"configSource":{"uri":"git+https://github.com/org/repo@refs/tags/v1","digest":{"sha1":"0123456789012345678901234567890123456789"},"entryPoint":".github/workflows/release.yml"}},
	"metadata":{"buildInvocationID":"123-1","buildStartedOn":"2023-01-02T03:04:05Z","buildFinishedOn":"2023-01-02T03:14:05Z"}}`
	f, err := ParseProvenance(PredicateSLSAv02, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := ProvenanceFacts{
		BuilderID:    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.2.0",
		BuildType:    "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
		BuildID:      "123-1",
		SourceURI:    "git+https://github.com/org/repo",
		SourceRef:    "refs/tags/v1",
		SourceCommit: "0123456789012345678901234567890123456789",
		StartedOn:    time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC),
		FinishedOn:   time.Date(2023, 1, 2, 3, 14, 5, 0, time.UTC),
	}
	if !reflect.DeepEqual(*f, want) {
		t.Fatalf("facts = %+v\nwant    %+v", *f, want)
	}
}

func TestParseProvenanceErrors(t *testing.T) {
	tests := []struct {
		name, typ, in, want string
	}{
		{"unknown type", "https://example.com/p", `{}`, "not SLSA provenance"},
		{"v1 not json", PredicateSLSAv1, `{`, "couldn't parse"},
		{"v1 no buildType", PredicateSLSAv1, `{"runDetails":{"builder":{"id":"x"}}}`, "no buildType"},
		{"v1 no builder", PredicateSLSAv1, `{"buildDefinition":{"buildType":"x"}}`, "no builder id"},
		{"v1 bad time", PredicateSLSAv1, `{"buildDefinition":{"buildType":"x"},"runDetails":{"builder":{"id":"x"},"metadata":{"startedOn":"yesterday"}}}`, "couldn't parse"},
		{"custody bad params", PredicateSLSAv1, `{"buildDefinition":{"buildType":"` + BuildTypeCustody + `","externalParameters":[]},"runDetails":{"builder":{"id":"x"}}}`, "externalParameters"},
		{"v0.2 no builder", PredicateSLSAv02, `{"buildType":"x"}`, "no builder id"},
		{"v0.2 not json", PredicateSLSAv02, `[]`, "couldn't parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProvenance(tt.typ, []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestSplitRef(t *testing.T) {
	tests := []struct{ in, uri, ref string }{
		{"git+https://github.com/org/repo@refs/tags/v1", "git+https://github.com/org/repo", "refs/tags/v1"},
		{"git+https://github.com/org/repo", "git+https://github.com/org/repo", ""},
		{"git+ssh://git@github.com/org/repo", "git+ssh://git@github.com/org/repo", ""},
		{"git+ssh://git@github.com/org/repo@refs/heads/main", "git+ssh://git@github.com/org/repo", "refs/heads/main"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			uri, ref := splitRef(tt.in)
			if uri != tt.uri || ref != tt.ref {
				t.Fatalf("splitRef = %q, %q; want %q, %q", uri, ref, tt.uri, tt.ref)
			}
		})
	}
}

func FuzzParseProvenance(f *testing.F) {
	for _, b := range readStatements(f) {
		s, err := ParseStatement(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.PredicateType, []byte(s.Predicate))
	}
	f.Add(PredicateSLSAv1, []byte(`{"buildDefinition":{"buildType":"`+BuildTypeCustody+`","externalParameters":{"source":{"uri":"git+https://x/y@z"}}},"runDetails":{"builder":{"id":"b"}}}`))
	f.Fuzz(func(t *testing.T, typ string, b []byte) {
		facts, err := ParseProvenance(typ, b)
		if err == nil && facts.BuilderID == "" {
			t.Fatal("facts without builder id")
		}
	})
}
