// Package auth measures what authenticating a bearer token costs per
// request in custody serve: the request goes through the server's real
// handler (mux, metrics, auth) to a 403 (a builder token on an admin
// route), so nothing but authentication runs after the route is found.
// Baseline in the same process: the same request without a token (401
// before any lookup). run.sh runs this file against the code before the
// token lifecycle as well, interleaved, and compares with benchstat.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
)

// tokenFile writes n builder tokens to dir/tokens in the format every
// version reads (one JSON object per line: sha256, role, key, name,
// created) and returns one of them, from the middle of the file.
func tokenFile(b *testing.B, dir string, n int) string {
	b.Helper()
	var sb strings.Builder
	var pick string
	for i := range n {
		var raw [32]byte
		rand.Read(raw[:])
		tok := api.TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
		sum := sha256.Sum256([]byte(tok))
		line, _ := json.Marshal(map[string]any{"sha256": hex.EncodeToString(sum[:]), "role": "builder", "key": "builder",
			"name": fmt.Sprintf("bench-%d", i), "created": time.Now().UTC()})
		sb.Write(line)
		sb.WriteByte('\n')
		if i == n/2 {
			pick = tok
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return pick
}

func BenchmarkAuth(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			tok := tokenFile(b, dir, n)
			s, err := server.Open(context.Background(), server.Config{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			h := s.Handler()
			for _, c := range []struct {
				name, header string
				want         int
			}{
				{"none", "", http.StatusUnauthorized}, // baseline: no lookup
				{"valid", "Bearer " + tok, http.StatusForbidden},
				{"unknown", "Bearer " + api.TokenPrefix + "unknown", http.StatusUnauthorized},
			} {
				b.Run("token="+c.name, func(b *testing.B) {
					req := httptest.NewRequest("POST", "/api/v1/incidents", nil)
					if c.header != "" {
						req.Header.Set("Authorization", c.header)
					}
					b.ReportAllocs()
					for b.Loop() {
						w := httptest.NewRecorder()
						h.ServeHTTP(w, req)
						if w.Code != c.want {
							b.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body)
						}
					}
				})
			}
		})
	}
}
