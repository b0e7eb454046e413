package demo

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/custody-dev/custody/verify"
)

// recorder keeps what the demo told, in order.
type recorder struct {
	told    []string
	signed  [][]byte
	reports []*verify.Report
}

func (r *recorder) Step(title string) { r.told = append(r.told, "step "+title) }
func (r *recorder) Note(text string)  { r.told = append(r.told, "note "+text) }
func (r *recorder) Signed(name string, b []byte) {
	r.told = append(r.told, "signed "+name)
	r.signed = append(r.signed, b)
}
func (r *recorder) Verified(rep *verify.Report) {
	r.told = append(r.told, "verified")
	r.reports = append(r.reports, rep)
}

func failed(rep *verify.Report) []string {
	var out []string
	for _, c := range rep.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

// The tour verifies the genuine artifact, refuses the untrusted builder
// and the tampered artifact, and says before the build why it may take
// minutes.
func TestRun(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	rec := &recorder{}
	var out strings.Builder
	res, err := Run(context.Background(), Options{Dir: t.TempDir(), Progress: rec, BuildOutput: &out})
	if err != nil {
		t.Fatalf("Run: %v (build output: %s)", err, out.String())
	}
	if !res.OK() {
		t.Errorf("result not OK: good %v, wrong builder %v, tampered %v", res.Good.Verified, res.WrongBuilder.Verified, res.Tampered.Verified)
	}
	if got := failed(res.Good); len(got) != 0 {
		t.Errorf("genuine artifact failed %v", got)
	}
	if got := failed(res.WrongBuilder); len(got) != 1 || got[0] != "builder-id" {
		t.Errorf("untrusted builder failed %v, want only builder-id", got)
	}
	if got := failed(res.Tampered); !strings.Contains(strings.Join(got, ","), "subject") {
		t.Errorf("tampered artifact failed %v, want subject", got)
	}
	if len(rec.signed) != 1 || len(rec.reports) != 3 {
		t.Errorf("told %d bundles and %d reports, want 1 and 3", len(rec.signed), len(rec.reports))
	}
	// the slow step is announced before it runs
	told := strings.Join(rec.told, "\n")
	build := strings.Index(told, "step custody build")
	why := strings.Index(told, "note (the first run can take minutes")
	signed := strings.Index(told, "signed dist/hello.sigstore.json")
	if build < 0 || why < build || signed < why {
		t.Errorf("progress does not say before the build why it may take long:\n%s", told)
	}
}

// Without Go the demo says so.
func TestRunWithoutGo(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Run(context.Background(), Options{Dir: t.TempDir()})
	if !errors.Is(err, ErrNoGo) {
		t.Fatalf("Run without go = %v, want ErrNoGo", err)
	}
}
