package cli

import (
	"strings"
	"testing"

	"github.com/custody-dev/custody/keyid"
)

// Where a user types a key ID (search --key-id, incident --key, audit
// --actor) either form names the key, and the hex form is what is used.
func TestKeyIDInputEitherForm(t *testing.T) {
	hexID := strings.Repeat("ab", 32)
	id, err := keyid.Parse(hexID)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{hexID, strings.ToUpper(hexID), id.Base64()} {
		q, err := (&searchFlags{key: in}).query()
		if err != nil || q.SignerKeyID != hexID {
			t.Errorf("search --key-id %s: SignerKeyID %q, err %v; want %s", in, q.SignerKeyID, err, hexID)
		}
		got, err := incidentKeyID(in)
		if err != nil || got != hexID {
			t.Errorf("incident --key %s: %q, %v; want %s", in, got, err, hexID)
		}
		o, err := auditOptions("", in, "", "", "", "", false)
		if err != nil || o.Query.Actor != hexID {
			t.Errorf("audit --actor %s: %q, %v; want %s", in, o.Query.Actor, err, hexID)
		}
	}
	_, err = (&searchFlags{key: "sha256:" + hexID}).query()
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("malformed --key-id: err %v, want a one-line error", err)
	}
}
