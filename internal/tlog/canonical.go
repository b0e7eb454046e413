package tlog

import (
	"encoding/base64"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// canonicalHashedRekord writes the RFC 8785 canonical protojson of a
// hashedrekord v0.0.2 entry directly, as canonicalize would (keys sorted,
// no whitespace, bytes as standard base64, enums by name), without
// encoding and re-parsing JSON: it is the whole cost of canonicalization
// on the append path. ok is false for an entry it does not cover (another
// kind, a field protojson would omit as zero, an enum value without a
// name, a message set by a field not written here), which canonicalize
// must then handle; TestCanonicalHashedRekord and
// FuzzCanonicalHashedRekord hold the two to the same output.
func canonicalHashedRekord(e *rekorpb.Entry) (body []byte, ok bool) {
	hr := e.GetSpec().GetHashedRekordV002()
	data, sig := hr.GetData(), hr.GetSignature()
	v := sig.GetVerifier()
	algorithm, ok1 := enumName(data.GetAlgorithm())
	details, ok2 := enumName(v.GetKeyDetails())
	if hr == nil || !ok1 || !ok2 || !plain(e.Kind) || !plain(e.ApiVersion) ||
		len(data.GetDigest()) == 0 || len(sig.GetContent()) == 0 {
		return nil, false
	}
	var keyField string
	var raw []byte
	switch k := v.GetVerifier().(type) {
	case *rekorpb.Verifier_PublicKey:
		keyField, raw = "publicKey", k.PublicKey.GetRawBytes()
	case *rekorpb.Verifier_X509Certificate:
		keyField, raw = "x509Certificate", k.X509Certificate.GetRawBytes()
	}
	if len(raw) == 0 {
		return nil, false
	}
	b := make([]byte, 0, 256+base64.StdEncoding.EncodedLen(len(data.Digest)+len(sig.Content)+len(raw)))
	b = append(b, `{"apiVersion":"`...)
	b = append(b, e.ApiVersion...)
	b = append(b, `","kind":"`...)
	b = append(b, e.Kind...)
	b = append(b, `","spec":{"hashedRekordV002":{"data":{"algorithm":"`...)
	b = append(b, algorithm...)
	b = append(b, `","digest":"`...)
	b = base64.StdEncoding.AppendEncode(b, data.Digest)
	b = append(b, `"},"signature":{"content":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig.Content)
	b = append(b, `","verifier":{"keyDetails":"`...)
	b = append(b, details...)
	b = append(b, `","`...)
	b = append(b, keyField...)
	b = append(b, `":{"rawBytes":"`...)
	b = base64.StdEncoding.AppendEncode(b, raw)
	b = append(b, `"}}}}}}`...)
	return b, true
}

// enumName is the name protojson writes for a non-zero enum value.
func enumName(e protoreflect.Enum) (string, bool) {
	if e.Number() == 0 {
		return "", false
	}
	d := e.Descriptor().Values().ByNumber(e.Number())
	if d == nil {
		return "", false
	}
	return string(d.Name()), true
}

// plain reports whether s is a non-empty JSON string body that needs no
// escaping under RFC 8785 and sorts as written: letters, digits, '.', '_'.
func plain(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return s != ""
}
