package gcpolicy

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime/metrics"
	"strings"
	"testing"
)

// settings are the collector's GOGC and memory limit as the runtime
// reports them.
func settings() string {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return fmt.Sprintf("gogc=%d limit=%d", int64(s[0].Value.Uint64()), s[1].Value.Uint64())
}

// TestMain is also the child process of TestShortLived: the runtime reads
// GOGC and GOMEMLIMIT at start, so each case is a fresh process.
func TestMain(m *testing.M) {
	if os.Getenv("GCPOLICY_CHILD") == "1" {
		changed := ShortLived()
		fmt.Printf("changed=%t %s\n", changed, settings())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestShortLived(t *testing.T) {
	tests := []struct {
		env  []string
		want string
	}{
		{nil, fmt.Sprintf("changed=true gogc=-1 limit=%d", MemoryLimit)},
		{[]string{"GOGC="}, fmt.Sprintf("changed=true gogc=-1 limit=%d", MemoryLimit)},
		{[]string{"GOGC=100"}, fmt.Sprintf("changed=false gogc=100 limit=%d", math.MaxInt64)},
		{[]string{"GOGC=off"}, fmt.Sprintf("changed=false gogc=-1 limit=%d", math.MaxInt64)},
		{[]string{"GOMEMLIMIT=24MiB"}, fmt.Sprintf("changed=false gogc=100 limit=%d", 24<<20)},
		{[]string{"GOGC=off", "GOMEMLIMIT=32MiB"}, fmt.Sprintf("changed=false gogc=-1 limit=%d", 32<<20)},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.env, ","), func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(withoutGC(os.Environ()), "GCPOLICY_CHILD=1")
			cmd.Env = append(cmd.Env, tt.env...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// withoutGC is env without GOGC and GOMEMLIMIT.
func withoutGC(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			out = append(out, kv)
		}
	}
	return out
}
