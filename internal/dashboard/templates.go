package dashboard

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

var pages = []string{"environments", "artifact", "evidence", "search", "incidents", "log", "metrics", "error"}

var funcs = template.FuncMap{
	"short": func(s string) string {
		if len(s) > 19 {
			return s[:19] + "…"
		}
		return s
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		d := now.Sub(t).Round(time.Second)
		switch {
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	},
	"dur": func(d time.Duration) string {
		if d < 0 {
			return "-" + (-d).Round(time.Second).String()
		}
		return d.Round(time.Second).String()
	},
	"isdigest": func(s string) bool { return digestRe.MatchString(s) },
	"join":     strings.Join,
	"hexs":     func(b []byte) string { return fmt.Sprintf("%x", b) },
	"passfail": func(ok bool) string {
		if ok {
			return "pass"
		}
		return "fail"
	},
}

func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, p := range pages {
		t, err := template.New(p).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/chart.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("couldn't parse template %s: %w", p, err)
		}
		out[p] = t
	}
	return out, nil
}
