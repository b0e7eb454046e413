package attest

import (
	"strings"
	"testing"
)

const goodRedFlags = `{"computedBy":"https://custody.example","computedAt":"2026-01-01T00:00:00Z",
	"build":{"bundle":"` + sha256a + `","evidenceId":7,"sourceUri":"git+https://github.com/org/app","sourceRef":"refs/heads/main","builderId":"b"},
	"lineage":{"subjectName":"app","sourceUri":"git+https://github.com/org/app","track":"release","compared":12},
	"flags":[{"kind":"new-dependency","message":"pkg:golang/evil was never in a build of this source","clear":"approve it","subject":"pkg:golang/evil"}],
	"dependencies":[{"change":"added","name":"pkg:golang/evil","to":"v1.0.0"}]}`

func TestParseRedFlags(t *testing.T) {
	p, err := ParseRedFlags([]byte(goodRedFlags))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Flags) != 1 || p.Flags[0].Kind != "new-dependency" || p.Lineage.Compared != 12 || p.Build.EvidenceID != 7 {
		t.Errorf("parsed %+v", p)
	}
	roundTrip(t, p, ParseRedFlags)
	none, err := ParseRedFlags([]byte(strings.Replace(goodRedFlags, `"flags":[{"kind":"new-dependency","message":"pkg:golang/evil was never in a build of this source","clear":"approve it","subject":"pkg:golang/evil"}],`, ``, 1)))
	if err != nil || none.Flags == nil || len(none.Flags) != 0 {
		t.Errorf("no flags: %v, %#v", err, none)
	}
	for name, bad := range map[string]string{
		"no computedBy":    strings.Replace(goodRedFlags, `"https://custody.example"`, `""`, 1),
		"no time":          strings.Replace(goodRedFlags, `"2026-01-01T00:00:00Z"`, `"0001-01-01T00:00:00Z"`, 1),
		"bundle not hex":   strings.Replace(goodRedFlags, sha256a, "xyz", 1),
		"no subject name":  strings.Replace(goodRedFlags, `"subjectName":"app"`, `"subjectName":""`, 1),
		"negative count":   strings.Replace(goodRedFlags, `"compared":12`, `"compared":-1`, 1),
		"bad kind":         strings.Replace(goodRedFlags, `"kind":"new-dependency"`, `"kind":"New Dependency"`, 1),
		"empty message":    strings.Replace(goodRedFlags, `"message":"pkg:golang/evil was never in a build of this source"`, `"message":""`, 1),
		"bad change":       strings.Replace(goodRedFlags, `"change":"added"`, `"change":"moved"`, 1),
		"unknown member":   strings.Replace(goodRedFlags, `"computedBy"`, `"extra":1,"computedBy"`, 1),
		"duplicate member": strings.Replace(goodRedFlags, `"flags":[`, `"flags":[],"flags":[`, 1),
		"invalid utf-8":    strings.Replace(goodRedFlags, `"approve it"`, "\"appr\xffve\"", 1),
		"not an object":    `[]`,
		"too many flags":   strings.Replace(goodRedFlags, `"flags":[`, `"flags":[`+strings.Repeat(`{"kind":"a","message":"m"},`, MaxRedFlags), 1),
	} {
		if _, err := ParseRedFlags([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseRedFlags: never panics; what it accepts has well-formed kinds
// and survives a round trip.
func FuzzParseRedFlags(f *testing.F) {
	f.Add([]byte(goodRedFlags))
	f.Add([]byte(`{"flags":[{"kind":"x"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseRedFlags(b)
		if err != nil {
			return
		}
		for _, fl := range p.Flags {
			if !redFlagKind.MatchString(fl.Kind) || fl.Message == "" {
				t.Fatalf("accepted flag %+v", fl)
			}
		}
		roundTrip(t, p, ParseRedFlags)
	})
}
