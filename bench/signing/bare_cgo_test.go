//go:build cgo

package signingbench

import (
	"crypto/sha256"
	"os"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/custody-dev/custody/signer"
)

// BenchmarkSignRawBareToken is the floor under BenchmarkSignRaw/key=pkcs11:
// the same key in the same token signed with bare C_SignInit + C_Sign
// (CKM_ECDSA) on one session of our own, without crypto11's session pool
// or custody's signer around it (and without the ASN.1 encoding of r||s).
func BenchmarkSignRawBareToken(b *testing.B) {
	tokenKey(b) // the key exists, and the module is initialized and logged in
	module := os.Getenv("CUSTODY_TEST_PKCS11_MODULE")
	if module == "" {
		module = signer.DefaultPKCS11Module
	}
	pin := os.Getenv("CUSTODY_TEST_PKCS11_PIN")
	if pin == "" {
		pin = "1234"
	}
	p := pkcs11.New(module)
	if p == nil {
		b.Fatalf("couldn't load %s", module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err == nil {
		defer p.Finalize()
	} else if e, ok := err.(pkcs11.Error); !ok || e != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
		b.Fatal(err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		b.Fatal(err)
	}
	slot, found := uint(0), false
	for _, sl := range slots {
		if ti, err := p.GetTokenInfo(sl); err == nil && strings.TrimRight(ti.Label, " \x00") == "custody" {
			slot, found = sl, true
		}
	}
	if !found {
		b.Fatal("no token labelled custody")
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		b.Fatal(err)
	}
	defer p.CloseSession(sh)
	if err := p.Login(sh, pkcs11.CKU_USER, pin); err != nil {
		if e, ok := err.(pkcs11.Error); !ok || e != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			b.Fatal(err)
		}
	}
	if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, tokenLabel)}); err != nil {
		b.Fatal(err)
	}
	objs, _, err := p.FindObjects(sh, 2)
	p.FindObjectsFinal(sh)
	if err != nil || len(objs) != 1 {
		b.Fatalf("want one private key labelled %s: %d, %v", tokenLabel, len(objs), err)
	}
	digest := sha256.Sum256([]byte("custody"))
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.SignInit(sh, mech, objs[0]); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Sign(sh, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}
