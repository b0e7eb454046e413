package verify

import (
	"strings"
	"testing"
)

// Counts in reports read as English: "1 tlog entry", "2 tlog entries",
// never "entr(ies)".
func TestDescribeCounts(t *testing.T) {
	for _, tc := range []struct {
		ev   evidence
		want string
	}{
		{evidence{version: "v0.3", nTlog: 1, nTSA: 1}, "1 tlog entry, 1 RFC 3161 timestamp"},
		{evidence{version: "v0.3", nTlog: 2, nTSA: 0}, "2 tlog entries, 0 RFC 3161 timestamps"},
	} {
		got := tc.ev.describe()
		if !strings.HasSuffix(got, tc.want) || strings.Contains(got, "(ies)") {
			t.Errorf("describe() = %q, want it to end with %q", got, tc.want)
		}
	}
}
