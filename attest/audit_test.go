package attest

import (
	"strings"
	"testing"
)

const goodAudit = `{"action":"policy.changed","actor":"alice","token":"admin:a","time":"2026-01-01T00:00:00Z","detail":{"environment":"prod"}}`

func TestParseAudit(t *testing.T) {
	p, err := ParseAudit([]byte(goodAudit))
	if err != nil {
		t.Fatal(err)
	}
	if p.Action != "policy.changed" || p.Token != "admin:a" || len(p.Detail) == 0 {
		t.Errorf("parsed %+v", p)
	}
	roundTrip(t, p, ParseAudit)
	for name, bad := range map[string]string{
		"bad action":    strings.Replace(goodAudit, `"policy.changed"`, `"Policy changed"`, 1),
		"no token":      strings.Replace(goodAudit, `"admin:a"`, `""`, 1),
		"no time":       strings.Replace(goodAudit, `,"time":"2026-01-01T00:00:00Z"`, ``, 1),
		"invalid utf-8": strings.Replace(goodAudit, `"alice"`, "\"al\xffce\"", 1),
		// The detail a reconciler would apply, hidden behind another.
		"duplicate member": strings.Replace(goodAudit, `"detail":`, `"detail":{"environment":"dev"},"detail":`, 1),
		"not an object":    `[]`,
	} {
		if _, err := ParseAudit([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseAudit: never panics; what it accepts has a well-formed action
// and survives a round trip.
func FuzzParseAudit(f *testing.F) {
	f.Add([]byte(goodAudit))
	f.Add([]byte(`{"action":"a.b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseAudit(b)
		if err != nil {
			return
		}
		if !AuditAction.MatchString(p.Action) || p.Token == "" {
			t.Fatalf("accepted %+v", p)
		}
		roundTrip(t, p, ParseAudit)
	})
}
