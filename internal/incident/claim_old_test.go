package incident

import (
	"encoding/asn1"
	"errors"
	"time"
)

// oldClaimedTime is the hand-written DER walker claimedTime replaced,
// kept to hold the cryptobyte walker to it (FuzzClaimedTime).
//
// It returned the genTime an RFC 3161 TimeStampResp (RFC 3161
// section 2.4.2) claims, reading only the DER path to it:
//
//	TimeStampResp { status PKIStatusInfo, timeStampToken ContentInfo }
//	ContentInfo { contentType, content [0] EXPLICIT SignedData }
//	SignedData { version, digestAlgorithms, encapContentInfo, ... }
//	EncapsulatedContentInfo { eContentType, eContent [0] EXPLICIT OCTET STRING }
//	TSTInfo { version, policy, messageImprint, serialNumber, genTime, ... }
//
// Nothing is verified and the certificates are not parsed: the time is a
// claim, used only to skip verifying evidence that is affected whatever
// it proves (FromBundle). A response it cannot read (BER, a status other
// than granted, no token) is an error; the caller then verifies.
func oldClaimedTime(resp []byte) (time.Time, error) {
	r := derReader{rest: resp}
	r.enter(0x30)               // TimeStampResp
	status := r.enterCopy(0x30) // PKIStatusInfo
	// PKIStatus granted (0), as digitorus/timestamp.ParseResponse requires.
	if v, _, ok := derNext(status, 0x02); !r.failed && (!ok || len(v) != 1 || v[0] != 0) {
		return time.Time{}, errors.New("timestamp status is not granted")
	}
	r.enter(0x30) // ContentInfo
	r.skip(0x06)  // contentType
	r.enter(0xa0) // [0] EXPLICIT
	r.enter(0x30) // SignedData
	r.skip(0x02)  // version
	r.skip(0x31)  // digestAlgorithms
	r.enter(0x30) // EncapsulatedContentInfo
	r.skip(0x06)  // eContentType
	r.enter(0xa0) // [0] EXPLICIT
	r.enter(0x04) // OCTET STRING
	r.enter(0x30) // TSTInfo
	r.skip(0x02)  // version
	r.skip(0x06)  // policy
	r.skip(0x30)  // messageImprint
	r.skip(0x02)  // serialNumber
	gen := r.element(0x18)
	if r.failed {
		return time.Time{}, errors.New("not a DER TimeStampResp with a token")
	}
	var t time.Time
	if _, err := asn1.UnmarshalWithParams(gen, &t, "generalized"); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// derReader walks DER: enter reads an element and continues inside it,
// skip reads one and continues after it. After a failure every step fails.
type derReader struct {
	rest   []byte
	failed bool
}

func (r *derReader) enter(tag byte) {
	if r.failed {
		return
	}
	c, _, ok := derNext(r.rest, tag)
	r.rest, r.failed = c, !ok
}

// enterCopy returns the contents of the next element and continues after it.
func (r *derReader) enterCopy(tag byte) []byte {
	if r.failed {
		return nil
	}
	c, rest, ok := derNext(r.rest, tag)
	r.rest, r.failed = rest, !ok
	return c
}

func (r *derReader) skip(tag byte) { r.enterCopy(tag) }

// element returns the whole next element (tag, length, contents).
func (r *derReader) element(tag byte) []byte {
	if r.failed {
		return nil
	}
	_, rest, ok := derNext(r.rest, tag)
	if !ok {
		r.failed = true
		return nil
	}
	e := r.rest[:len(r.rest)-len(rest)]
	r.rest = rest
	return e
}

// derNext reads one DER element of the given (single-byte) tag from b and
// returns its contents and what follows it. Only definite lengths of at
// most four bytes are read.
func derNext(b []byte, tag byte) (content, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, hdr := int(b[1]), 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 4 || len(b) < 2+k {
			return nil, nil, false
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		if n < 0x80 || (k > 1 && b[2] == 0) { // not the shortest form: not DER
			return nil, nil, false
		}
		hdr += k
	}
	if n < 0 || n > len(b)-hdr {
		return nil, nil, false
	}
	return b[hdr : hdr+n], b[hdr+n:], true
}
