package tokenfile

import (
	"bytes"
	"testing"

	"github.com/custody-dev/custody/internal/api"
)

// Parse reads a file people edit by hand: whatever it holds, it
// never panics, every record it returns is usable, and every line is kept
// (editTokens writes lines back byte for byte).
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(`{"sha256":"` + hashToken("cust_x") + `","role":"auditor","created":"2025-01-01T00:00:00Z"}` + "\n"))
	f.Add([]byte(`{"sha256":"` + hashToken("cust_y") + `","role":"builder","key":"builder","name":"ci","created":"2025-01-01T00:00:00Z","expires":"2026-01-01T00:00:00Z","revoked":"2025-06-01T00:00:00Z"}`))
	f.Add([]byte("{not json\n\n{\"sha256\":\"00\",\"role\":\"admin\"}\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines := Parse(b)
		var n int
		for _, l := range lines {
			if (l.Rec == nil) == (l.Err == nil) {
				t.Fatalf("line %q: record %v and reason %v", l.raw, l.Rec, l.Err)
			}
			if l.Rec != nil {
				if err := l.Rec.check(); err != nil {
					t.Fatalf("returned record fails its check: %v", err)
				}
				if len(l.Rec.ID()) != api.TokenIDLen || l.Rec.DisplayName() == "" {
					t.Fatalf("record without ID or name: %+v", l.Rec)
				}
			}
			if len(bytes.TrimSpace(l.raw)) == 0 || bytes.ContainsRune(l.raw, '\n') {
				t.Fatalf("line %q is blank or holds a newline", l.raw)
			}
			n++
		}
		if n > bytes.Count(b, []byte("\n"))+1 {
			t.Fatalf("%d lines from %d newlines", n, bytes.Count(b, []byte("\n")))
		}
	})
}
