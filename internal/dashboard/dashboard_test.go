package dashboard_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPagesHTTP(t *testing.T) {
	s := seed(t)
	if code, _ := get(t, s.url+"/ui/", ""); code != http.StatusSeeOther {
		t.Errorf("no token: %d, want a redirect to the login form", code)
	}
	if code, _ := get(t, s.url+"/ui/", s.deployer); code != http.StatusForbidden {
		t.Errorf("deployer token: %d, want 403", code)
	}
	if code, _ := get(t, s.url+"/ui/", "cust_wrong"); code != http.StatusUnauthorized {
		t.Errorf("bad token: %d, want 401", code)
	}
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/ui/", []string{"prod", "staging", "rolled back", "&lt;b id=&#34;inj-actor&#34;&gt;"}},
		{"/ui/artifact/" + s.good, []string{"example.com/org/app", commit, builderID, "Policy decisions now", "approved by &lt;i id=&#34;inj-approver&#34;&gt;eve&lt;/i&gt;", "release-managers (eve)"}},
		{"/ui/search?q=" + commit, []string{"result(s)"}},
		{"/ui/log", []string{"Consistency with history"}},
		{"/ui/metrics", []string{"<svg", "Verification latency"}},
		{"/ui/incidents", []string{"Incidents"}},
	} {
		code, body := get(t, s.url+tt.path, s.auditor)
		if code != http.StatusOK {
			t.Errorf("%s: %d\n%s", tt.path, code, body)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: missing %q", tt.path, w)
			}
		}
		for _, bad := range []string{`id="inj-`, `<script`, `<img id`} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: unescaped %q in the page", tt.path, bad)
			}
		}
	}
	if code, _ := get(t, s.url+"/ui/artifact/sha256:nothex", s.auditor); code != http.StatusBadRequest {
		t.Errorf("bad digest: %d, want 400", code)
	}
}
