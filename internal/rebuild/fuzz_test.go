package rebuild

import (
	"strings"
	"testing"
)

// FuzzReplayEnv: whatever a provenance records, a replayed variable is on
// the allow-list with a value that passes its check and has no control
// character, and a refusal gives one of a fixed set of reasons, so it never
// quotes the value.
func FuzzReplayEnv(f *testing.F) {
	f.Add("GOFLAGS", "-trimpath -toolexec=/tmp/x")
	f.Add("LD_PRELOAD", "/tmp/evil.so")
	f.Add("CC", "gcc")
	f.Add("CGO_LDFLAGS", "-B/tmp -Wl,--plugin")
	f.Add("SOURCE_DATE_EPOCH", "1\n2")
	reasons := map[string]bool{
		"not on the replay allow-list": true, errValue.Error(): true,
		checkCFlags("-B").Error(): true, checkRustFlags("-Z").Error(): true, checkGoFlags("-unknown").Error(): true,
	}
	for _, n := range namedGoFlags {
		reasons["flag -"+n+" not allowed"] = true
	}
	for _, n := range goFlags {
		reasons["flag "+n+" names a linker"] = true
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		assign, refused := replayEnv(map[string]string{name: value}, nil, func(string) bool { return false })
		for _, kv := range assign {
			k, v, _ := strings.Cut(kv, "=")
			check, ok := replayable[k]
			if !ok || check(v) != nil || strings.ContainsAny(v, "\x00\n\r") {
				t.Fatalf("replayed %q", kv)
			}
		}
		for _, r := range refused {
			reason, ok := strings.CutPrefix(r, name+": ")
			reason, ok2 := strings.CutSuffix(reason, " (pass --env "+name+" to replay it)")
			if !ok || !ok2 || !reasons[reason] {
				t.Fatalf("refusal %q is not a fixed reason", r)
			}
		}
	})
}
