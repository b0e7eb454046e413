package attest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readStatements(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/statements/*.statement.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no statements in testdata: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestParseStatementCorpus(t *testing.T) {
	for name, b := range readStatements(t) {
		t.Run(name, func(t *testing.T) {
			s, err := ParseStatement(b)
			if err != nil {
				t.Fatalf("ParseStatement: %v", err)
			}
			if len(s.Subject) == 0 || s.PredicateType == "" {
				t.Fatalf("incomplete statement: %+v", s)
			}
		})
	}
}

const sha256a = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

func TestParseStatementErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not json", `{`, "couldn't parse statement"},
		{"wrong type", `{"_type":"https://in-toto.io/Statement/v2","subject":[{"digest":{"sha256":"` + sha256a + `"}}],"predicateType":"x"}`, "_type"},
		{"no subject", `{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"x"}`, "no subject"},
		{"empty digest", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{}}],"predicateType":"x"}`, "has no digest"},
		{"short sha256", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"abcd"}}],"predicateType":"x"}`, "hex digits"},
		{"upper hex", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + strings.ToUpper(sha256a) + `"}}],"predicateType":"x"}`, "lowercase hex"},
		{"bad sha512", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha512":"zz"}}],"predicateType":"x"}`, "hex digits"},
		{"bad gitCommit", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"gitCommit":"123"}}],"predicateType":"x"}`, "hex digits"},
		{"empty value unknown alg", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"blake3":""}}],"predicateType":"x"}`, "empty"},
		{"no predicate type", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + sha256a + `"}}]}`, "predicateType"},
		{"predicate not object", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + sha256a + `"}}],"predicateType":"x","predicate":[1]}`, "not a JSON object"},
		{"oversized", `{"_type":"` + strings.Repeat(" ", MaxStatementBytes) + `"}`, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseStatement([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseStatement error = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestParseStatementAcceptsUnknownAlg(t *testing.T) {
	in := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"blake3":"XYZ"}}],"predicateType":"x"}`
	s, err := ParseStatement([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.SubjectFor("sha256", "XYZ"); ok {
		t.Fatal("unknown algorithm matched as sha256")
	}
}

func TestSubjectFor(t *testing.T) {
	s := &Statement{Subject: []Subject{
		{Name: "a", Digest: map[string]string{"sha256": sha256a}},
		{Name: "b", Digest: map[string]string{"sha512": strings.Repeat("ab", 64)}},
	}}
	tests := []struct {
		alg, hex string
		want     string
		ok       bool
	}{
		{"sha256", sha256a, "a", true},
		{"sha256", strings.ToUpper(sha256a), "a", true},
		{"sha512", strings.Repeat("AB", 64), "b", true},
		{"sha512", sha256a, "", false},
		{"sha256", "", "", false},
		{"sha1", sha256a, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.alg+"/"+tt.hex[:min(8, len(tt.hex))], func(t *testing.T) {
			got, ok := s.SubjectFor(tt.alg, tt.hex)
			if ok != tt.ok || got.Name != tt.want {
				t.Fatalf("SubjectFor = %q, %v; want %q, %v", got.Name, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestNewStatementRoundTrip(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pred := ProvenanceV1{
		BuildDefinition: BuildDefinition{
			BuildType: BuildTypeCustody,
			ExternalParameters: CustodyExternalParameters{
				Command: []string{"go", "build"},
				Source:  CustodySource{URI: "git+https://github.com/org/repo", Ref: "refs/tags/v1", Commit: strings.Repeat("a", 40), Dirty: true},
			},
		},
		RunDetails: RunDetails{
			Builder:  Builder{ID: "https://custody.dev/builder/local@v1"},
			Metadata: &BuildMetadata{InvocationID: "build-42", StartedOn: &start, FinishedOn: &start},
		},
	}
	s, err := NewStatement([]Subject{{Name: "bin", Digest: map[string]string{"sha256": sha256a}}}, PredicateSLSAv1, pred)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseProvenance(got.PredicateType, got.Predicate)
	if err != nil {
		t.Fatal(err)
	}
	want := ProvenanceFacts{
		BuilderID: "https://custody.dev/builder/local@v1", BuildType: BuildTypeCustody, BuildID: "build-42",
		SourceURI: "git+https://github.com/org/repo", SourceRef: "refs/tags/v1", SourceCommit: strings.Repeat("a", 40),
		StartedOn: start, FinishedOn: start, Dirty: true,
	}
	if !reflect.DeepEqual(*f, want) {
		t.Fatalf("facts = %+v\nwant %+v", *f, want)
	}

	if _, err := NewStatement(nil, PredicateSLSAv1, pred); err == nil {
		t.Fatal("NewStatement accepted no subjects")
	}
	if _, err := NewStatement(s.Subject, PredicateSLSAv1, func() {}); err == nil {
		t.Fatal("NewStatement accepted an unmarshalable predicate")
	}
}

func FuzzParseStatement(f *testing.F) {
	for _, b := range readStatements(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + sha256a + `"}}],"predicateType":"x","predicate":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatement(b)
		if err != nil {
			return
		}
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("parsed statement does not marshal: %v", err)
		}
		if _, err := ParseStatement(out); err != nil {
			t.Fatalf("marshalled statement does not parse: %v", err)
		}
	})
}
