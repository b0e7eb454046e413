package tlog

import (
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
)

// TestCheckpointStricterThanFormats: checkpoint texts that
// transparency-dev/formats parses but C2SP tlog-checkpoint does not allow
// are refused (checkCanonical), and a canonical one parses.
func TestCheckpointStricterThanFormats(t *testing.T) {
	hash := strings.Repeat("A", 43) + "="
	if cp, err := parseCheckpointBody("origin\n5\n" + hash + "\next\n"); err != nil || cp.Size != 5 || len(cp.Hash) != 32 {
		t.Fatalf("canonical checkpoint: %+v, %v", cp, err)
	}
	for name, text := range map[string]string{
		"leading zero":         "origin\n05\n" + hash + "\n",
		"short hash":           "origin\n5\nAAAA\n",
		"non-canonical base64": "origin\n5\n" + strings.Repeat("A", 42) + "B=\n",
		"empty extension line": "origin\n5\n" + hash + "\n\next\n",
		"no final newline":     "origin\n5\n" + hash + "\next",
		"carriage return":      "origin\n5\n" + hash + "\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			var c log.Checkpoint
			if _, err := c.Unmarshal([]byte(text)); err != nil {
				t.Errorf("formats refuses %q (%v): the case needs no wrapper", text, err)
			}
			if _, err := parseCheckpointBody(text); err == nil {
				t.Errorf("parsed %q", text)
			}
		})
	}
}
