package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// decodeDeployment reads one deployment record as the server's
// POST /api/v1/deployments does.
func decodeDeployment(b []byte) (*Deployment, error) {
	var d Deployment
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one record")
	}
	return &d, nil
}

// FuzzCheckDeployment: a deployment record (untrusted JSON from the
// deployments API or a local history file) is refused with ErrInvalid or
// accepted in a form that survives the store (Unix microseconds) and a
// JSON round trip unchanged.
func FuzzCheckDeployment(f *testing.F) {
	h := strings.Repeat("ab", 32)
	for _, s := range []string{
		`{"environment":"prod","event":"deployed","artifact":"sha256:` + h + `","time":"2026-03-01T12:00:00Z"}`,
		`{"environment":"prod","event":"rolled-back","artifact":"sha256:` + h + `","rollbackFrom":"sha256:` + h +
			`","policyDigest":"sha256:` + h + `","decision":"allowed","decisionBundle":"` + h +
			`","name":"ghcr.io/a/b","actor":"ci","detail":"x","time":"2026-03-01T12:00:00.123456789+05:00"}`,
		`{"environment":"prod","event":"failed","artifact":"sha256:` + h + `","time":"1970-01-01T00:00:01Z"}`,
		`{"environment":"","event":"","artifact":"","time":"0001-01-01T00:00:00Z"}`,
		`{"id":7,"recordedAt":"2026-03-01T12:00:00Z","environment":"a","event":"healthy","artifact":"sha256:` + h + `","time":"9999-12-31T23:59:59Z"}`,
		`{} {}`, `null`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDeployment(b)
		if err != nil {
			return
		}
		n, err := CheckDeployment(d)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if got := fromMicros(toMicros(n.Time)); !got.Equal(n.Time) {
			t.Fatalf("time %s is stored as %d and read back as %s", n.Time, toMicros(n.Time), got)
		}
		enc, err := json.Marshal(n)
		if err != nil {
			t.Fatalf("accepted record does not encode: %v", err)
		}
		d2, err := decodeDeployment(enc)
		if err != nil {
			t.Fatalf("re-encoded record %s does not decode: %v", enc, err)
		}
		n2, err := CheckDeployment(d2)
		if err != nil {
			t.Fatalf("re-encoded record %s refused: %v", enc, err)
		}
		if !n2.Time.Equal(n.Time) {
			t.Fatalf("time %s re-encodes as %s", n.Time, n2.Time)
		}
		n2.Time = n.Time
		if !reflect.DeepEqual(n, n2) {
			t.Fatalf("record changes in a JSON round trip:\n%+v\n%+v", n, n2)
		}
	})
}
