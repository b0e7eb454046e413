package osv

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// CVSSBaseScore computes the base score of a CVSS v3.0/v3.1 vector
// ("CVSS:3.1/AV:N/AC:L/...", https://www.first.org/cvss/v3.1/specification-document)
// or a CVSS v2 vector ("AV:N/AC:L/Au:N/C:P/I:P/A:P",
// https://www.first.org/cvss/v2/guide). CVSS v4 vectors are not scored:
// their score needs the specification's lookup tables; the error says so.
func CVSSBaseScore(vector string) (float64, error) {
	v := strings.TrimSpace(vector)
	switch {
	case strings.HasPrefix(v, "CVSS:3.0/"), strings.HasPrefix(v, "CVSS:3.1/"):
		return cvss3(v[len("CVSS:3.x/"):])
	case strings.HasPrefix(v, "CVSS:4"):
		return 0, errors.New("cvss v4 vectors are not scored")
	case strings.HasPrefix(v, "AV:"), strings.HasPrefix(v, "(AV:"):
		return cvss2(strings.Trim(v, "()"))
	}
	return 0, fmt.Errorf("unknown cvss vector %q", short(v))
}

func metrics(v string, want []string) (map[string]string, error) {
	m := make(map[string]string)
	for _, part := range strings.Split(v, "/") {
		k, val, ok := strings.Cut(part, ":")
		if !ok || k == "" || val == "" {
			return nil, fmt.Errorf("malformed cvss metric %q", short(part))
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("cvss metric %s repeated", short(k))
		}
		m[k] = val
	}
	for _, k := range want {
		if m[k] == "" {
			return nil, fmt.Errorf("cvss vector has no %s metric", k)
		}
	}
	return m, nil
}

func pick(m map[string]string, metric string, values map[string]float64) (float64, error) {
	f, ok := values[m[metric]]
	if !ok {
		return 0, fmt.Errorf("cvss metric %s has unknown value %q", metric, short(m[metric]))
	}
	return f, nil
}

func cvss3(v string) (float64, error) {
	m, err := metrics(v, []string{"AV", "AC", "PR", "UI", "S", "C", "I", "A"})
	if err != nil {
		return 0, err
	}
	changed := false
	switch m["S"] {
	case "U":
	case "C":
		changed = true
	default:
		return 0, fmt.Errorf("cvss metric S has unknown value %q", short(m["S"]))
	}
	pr := map[string]float64{"N": 0.85, "L": 0.62, "H": 0.27}
	if changed {
		pr = map[string]float64{"N": 0.85, "L": 0.68, "H": 0.5}
	}
	cia := map[string]float64{"H": 0.56, "L": 0.22, "N": 0}
	var f [7]float64
	for i, x := range []struct {
		metric string
		values map[string]float64
	}{
		{"AV", map[string]float64{"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}},
		{"AC", map[string]float64{"L": 0.77, "H": 0.44}},
		{"PR", pr},
		{"UI", map[string]float64{"N": 0.85, "R": 0.62}},
		{"C", cia}, {"I", cia}, {"A", cia},
	} {
		if f[i], err = pick(m, x.metric, x.values); err != nil {
			return 0, err
		}
	}
	iss := 1 - (1-f[4])*(1-f[5])*(1-f[6])
	impact := 6.42 * iss
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	}
	expl := 8.22 * f[0] * f[1] * f[2] * f[3]
	if impact <= 0 {
		return 0, nil
	}
	if changed {
		return roundUp(math.Min(1.08*(impact+expl), 10)), nil
	}
	return roundUp(math.Min(impact+expl, 10)), nil
}

// roundUp is CVSS v3.1's Roundup: the smallest one-decimal number not
// below x, computed on integers to avoid floating-point surprises.
func roundUp(x float64) float64 {
	i := int64(math.Round(x * 100000))
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return float64(i/10000+1) / 10
}

func cvss2(v string) (float64, error) {
	m, err := metrics(v, []string{"AV", "AC", "Au", "C", "I", "A"})
	if err != nil {
		return 0, err
	}
	cia := map[string]float64{"N": 0, "P": 0.275, "C": 0.660}
	var f [6]float64
	for i, x := range []struct {
		metric string
		values map[string]float64
	}{
		{"AV", map[string]float64{"L": 0.395, "A": 0.646, "N": 1.0}},
		{"AC", map[string]float64{"H": 0.35, "M": 0.61, "L": 0.71}},
		{"Au", map[string]float64{"M": 0.45, "S": 0.56, "N": 0.704}},
		{"C", cia}, {"I", cia}, {"A", cia},
	} {
		if f[i], err = pick(m, x.metric, x.values); err != nil {
			return 0, err
		}
	}
	impact := 10.41 * (1 - (1-f[3])*(1-f[4])*(1-f[5]))
	expl := 20 * f[0] * f[1] * f[2]
	if impact == 0 {
		return 0, nil
	}
	return math.Round(((0.6*impact)+(0.4*expl)-1.5)*1.176*10) / 10, nil
}

func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
