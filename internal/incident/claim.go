package incident

import (
	"encoding/asn1"
	"errors"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// claimedTime returns the genTime an RFC 3161 TimeStampResp (RFC 3161
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
func claimedTime(resp []byte) (time.Time, error) {
	var tsr, status, ci, signed, eci, tst cryptobyte.String
	var pkiStatus int64
	in := cryptobyte.String(resp)
	if !in.ReadASN1(&tsr, cbasn1.SEQUENCE) || !tsr.ReadASN1(&status, cbasn1.SEQUENCE) {
		return time.Time{}, errNoToken
	}
	// PKIStatus granted (0), as digitorus/timestamp.ParseResponse requires.
	if !status.ReadASN1Integer(&pkiStatus) || pkiStatus != 0 {
		return time.Time{}, errors.New("timestamp status is not granted")
	}
	explicit0 := cbasn1.Tag(0).Constructed().ContextSpecific()
	var gen cryptobyte.String
	ok := tsr.ReadASN1(&ci, cbasn1.SEQUENCE) &&
		ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) && // contentType
		ci.ReadASN1(&ci, explicit0) &&
		ci.ReadASN1(&signed, cbasn1.SEQUENCE) && // SignedData
		signed.SkipASN1(cbasn1.INTEGER) && // version
		signed.SkipASN1(cbasn1.SET) && // digestAlgorithms
		signed.ReadASN1(&eci, cbasn1.SEQUENCE) && // EncapsulatedContentInfo
		eci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) && // eContentType
		eci.ReadASN1(&eci, explicit0) &&
		eci.ReadASN1(&eci, cbasn1.OCTET_STRING) &&
		eci.ReadASN1(&tst, cbasn1.SEQUENCE) && // TSTInfo
		tst.SkipASN1(cbasn1.INTEGER) && // version
		tst.SkipASN1(cbasn1.OBJECT_IDENTIFIER) && // policy
		tst.SkipASN1(cbasn1.SEQUENCE) && // messageImprint
		tst.SkipASN1(cbasn1.INTEGER) && // serialNumber
		tst.ReadASN1Element(&gen, cbasn1.GeneralizedTime)
	if !ok {
		return time.Time{}, errNoToken
	}
	// encoding/asn1, as digitorus/timestamp reads it: fractions of a
	// second allowed.
	var t time.Time
	if _, err := asn1.UnmarshalWithParams(gen, &t, "generalized"); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

var errNoToken = errors.New("not a DER TimeStampResp with a token")
