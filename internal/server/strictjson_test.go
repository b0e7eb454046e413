package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/signer"
)

// The signing service and the push path refuse JSON that two readers could
// read differently (issue 11, item 11): a duplicate member name (a hidden
// first "subject": encoding/json keeps the last) and strings that are not
// UTF-8 (encoding/json stores U+FFFD, not the bytes that were signed).
// Each gets a one-line 400 and leaves the log and the index as they were.
func TestStrictJSON(t *testing.T) {
	ts := start(t, server.Config{})
	ctx := context.Background()
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	subject := func(name string) string {
		return `[{"name":"` + name + `","digest":{"sha256":"` + sum(name) + `"}}]`
	}
	stmt := func(subjects ...string) string {
		var b strings.Builder
		b.WriteString(`{"_type":"https://in-toto.io/Statement/v1"`)
		for _, s := range subjects {
			b.WriteString(`,"subject":` + s)
		}
		b.WriteString(`,"predicateType":"https://example.com/note/v1","predicate":{}}`)
		return b.String()
	}
	key, err := signer.Generate(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(statement string) []byte {
		// SignStatement parses what it signs, as the server does; sign
		// a valid statement and swap the payload's bytes afterwards.
		b, err := signer.SignStatement(ctx, key, []byte(stmt(subject("placeholder"))))
		if err != nil {
			t.Fatal(err)
		}
		return editBundle(t, b, func(m map[string]any) {
			field(m, "dsseEnvelope")["payload"] = []byte(statement)
		})
	}
	for _, tc := range []struct {
		name, path string
		body       []byte
	}{
		{"sign: hidden first subject", "/api/v1/sign", []byte(`{"statement":` + stmt(subject("victim"), subject("shown")) + `}`)},
		{"sign: duplicate statement member", "/api/v1/sign", []byte(`{"statement":` + stmt(subject("victim")) + `,"statement":` + stmt(subject("shown")) + `}`)},
		{"sign: invalid UTF-8", "/api/v1/sign", []byte(`{"statement":` + stmt(subject("caf\xe9")) + `}`)},
		{"sign: lone surrogate", "/api/v1/sign", []byte(`{"statement":` + stmt(subject(`app\ud800`)) + `}`)},
		{"push: duplicate bundle member", "/api/v1/evidence", []byte(`{"mediaType":"x","mediaType":"` + signer.BundleMediaType + `"}`)},
		{"push: hidden first subject", "/api/v1/evidence", signed(stmt(subject("victim"), subject("shown")))},
		{"push: invalid UTF-8 in the statement", "/api/v1/evidence", signed(stmt(subject("caf\xe9")))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count(t, ts)
			size := logSize(t, ts)
			resp := do(t, ts, http.MethodPost, tc.path, ts.tokens[api.RoleBuilder], tc.body)
			if resp.status != http.StatusBadRequest {
				t.Fatalf("status %d (%s), want 400", resp.status, resp.body)
			}
			if strings.Count(resp.body, "\n") != 1 || !strings.Contains(resp.body, "duplicate field") && !strings.Contains(resp.body, "UTF-8") {
				t.Errorf("error %q is not one line naming the duplicate or the UTF-8", resp.body)
			}
			if after := count(t, ts); after != before {
				t.Errorf("index grew from %d to %d", before, after)
			}
			if after := logSize(t, ts); after != size {
				t.Errorf("log grew from %d to %d", size, after)
			}
		})
	}
}
