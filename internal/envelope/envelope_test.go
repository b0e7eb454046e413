package envelope

import (
	"bytes"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts marshals to an
// envelope it accepts again with the same payload and signatures.
func FuzzParse(f *testing.F) {
	const pt = "application/vnd.custody.test"
	good, _ := Marshal(pt, []byte("payload"), []Signature{{KeyID: "a", Sig: []byte("s")}})
	f.Add(good)
	f.Add([]byte(`{"payloadType":"` + pt + `","payload":"","signatures":[]}`))
	f.Add([]byte(`{"payloadType":"x","payloadType":"` + pt + `","payload":"","signatures":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, sigs, err := Parse(b, pt)
		if err != nil {
			return
		}
		out, err := Marshal(pt, payload, sigs)
		if err != nil {
			t.Fatal(err)
		}
		p2, s2, err := Parse(out, pt)
		if err != nil || !bytes.Equal(p2, payload) || len(s2) != len(sigs) {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		for i := range sigs {
			if s2[i].KeyID != sigs[i].KeyID || !bytes.Equal(s2[i].Sig, sigs[i].Sig) || sigs[i].KeyID == "" || len(sigs[i].Sig) == 0 {
				t.Fatalf("signature %d changed or empty", i)
			}
		}
	})
}

func TestTallyThresholdZeroNeverMet(t *testing.T) {
	if (Tally{Threshold: 0}).Met() || (Tally{Threshold: 0, Valid: []string{"a"}}).Met() {
		t.Fatal("a threshold of 0 is met; want refused")
	}
	if !(Tally{Threshold: 1, Valid: []string{"a"}}).Met() {
		t.Fatal("1 of 1 not met")
	}
}
