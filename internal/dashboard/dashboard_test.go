package dashboard_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
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
		{"/ui/incidents", []string{s.open, s.closed, "&lt;script id=&#34;inj-incident&#34;&gt;", "key leaked &lt;img id=&#34;inj-detail&#34;",
			"/ui/artifact/" + s.bad, "/ui/artifact/" + s.good, "builder " + builderID + " since", "2h30m0s", "1m30s", "1h45m0s", "not-attempted"}},
		{"/ui/artifact/" + s.bad, []string{"Quarantined by incident", s.open, "refused: quarantined"}},
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
		for _, bad := range []string{`id="inj-`, `<script`, `<img id`, `<img `} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: unescaped %q in the page", tt.path, bad)
			}
		}
	}
	if code, _ := get(t, s.url+"/ui/artifact/sha256:nothex", s.auditor); code != http.StatusBadRequest {
		t.Errorf("bad digest: %d, want 400", code)
	}
}

// The incident figures on the metrics page and on /metrics are the same
// numbers, computed from the seeded records: detect 2h30m and 1h (mean
// 1h45m), contain 90 s (one incident rolled back).
func TestIncidentMetrics(t *testing.T) {
	s := seed(t)
	meanDetect := (openDetect + closedDetect) / 2
	code, page := get(t, s.url+"/ui/metrics", s.auditor)
	if code != http.StatusOK {
		t.Fatalf("/ui/metrics: %d", code)
	}
	for _, w := range []string{"Mean time to detect", meanDetect.String(), "Mean time to contain", openContain.String(),
		"Time to detect per incident", s.open, s.closed, "1 incident(s)", `<dd id="quarantined">1</dd>`} {
		if !strings.Contains(page, w) {
			t.Errorf("/ui/metrics: missing %q", w)
		}
	}
	incidentSeries := []string{
		fmt.Sprintf("custody_incident_mean_time_to_detect_seconds %g", meanDetect.Seconds()),
		fmt.Sprintf("custody_incident_mean_time_to_contain_seconds %g", openContain.Seconds()),
		`custody_incidents{state="open"} 1`,
		`custody_incidents{state="closed"} 1`,
		"custody_incidents_not_contained 1",
		"custody_quarantined_artifacts 1",
	}
	// With an auditor token /metrics shows them.
	code, prom := get(t, s.url+"/metrics", s.auditor)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, w := range incidentSeries {
		if !strings.Contains(prom, w) {
			t.Errorf("/metrics with an auditor token: missing %q", w)
		}
	}
	// Without a token: the public series only, nothing about incidents or
	// quarantine.
	code, pub := get(t, s.url+"/metrics", "")
	if code != http.StatusOK || !strings.Contains(pub, "custody_log_size") {
		t.Fatalf("/metrics without a token: %d, public series missing", code)
	}
	for _, bad := range []string{"custody_incident", "custody_quarantined"} {
		if strings.Contains(pub, bad) {
			t.Errorf("/metrics without a token shows %s series", bad)
		}
	}
	// A lower role, or a bad token, is refused rather than shown less.
	if code, _ := get(t, s.url+"/metrics", s.deployer); code != http.StatusForbidden {
		t.Errorf("/metrics with a deployer token: %d, want 403", code)
	}
	if code, _ := get(t, s.url+"/metrics", "cust_wrong"); code != http.StatusUnauthorized {
		t.Errorf("/metrics with a bad token: %d, want 401", code)
	}
	// Environments: canary runs the quarantined artifact: not green.
	_, envs := get(t, s.url+"/ui/", s.auditor)
	i := strings.Index(envs, `id="env-canary"`)
	if i < 0 || !strings.Contains(envs[i:], `data-status="fail">quarantined`) {
		t.Errorf("canary runs a quarantined artifact and is not shown quarantined")
	}
}

// When the incident records cannot be read, nothing is shown as if no
// incident had quarantined anything: the incidents page is an error, the
// artifact page says quarantine is unknown, prod (green before) is not
// checked, and /metrics reports NaN.
func TestIncidentsUnreadable(t *testing.T) {
	s := seed(t)
	if code, envs := get(t, s.url+"/ui/", s.auditor); code != http.StatusOK || !strings.Contains(envs, `data-status="pass">verified`) {
		t.Fatalf("prod is not green before the ledger is damaged (%d)", code)
	}
	f, err := os.OpenFile(s.ledger, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id": 7, "incident": "INC-trunc`)
	f.Close()

	if code, body := get(t, s.url+"/ui/incidents", s.auditor); code != http.StatusInternalServerError || !strings.Contains(body, "couldn&#39;t read incidents") {
		t.Errorf("incidents page with a damaged ledger: %d\n%s", code, body)
	}
	_, art := get(t, s.url+"/ui/artifact/"+s.good, s.auditor)
	for _, w := range []string{"whether an incident quarantined this artifact is unknown", "quarantine unknown; policy alone: allowed"} {
		if !strings.Contains(art, w) {
			t.Errorf("artifact page: missing %q", w)
		}
	}
	if strings.Contains(art, `"status pass">allowed`) {
		t.Error("artifact page shows allowed while quarantine is unknown")
	}
	_, envs := get(t, s.url+"/ui/", s.auditor)
	if strings.Contains(envs, `data-status="pass"`) {
		t.Error("an environment is green while quarantine is unknown")
	}
	_, prom := get(t, s.url+"/metrics", s.auditor)
	if !strings.Contains(prom, "custody_incident_mean_time_to_detect_seconds NaN") {
		t.Error("/metrics: mean time to detect is not NaN with a damaged ledger")
	}
}
