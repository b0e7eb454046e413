//go:build !cgo

package signer

import "errors"

// errNoCgo: PKCS#11 modules are C libraries, loaded through cgo.
var errNoCgo = errors.New("pkcs11: this custody was built without cgo, and PKCS#11 modules need it (rebuild with CGO_ENABLED=1)")

func openPKCS11(*PKCS11URI) (*PKCS11Signer, error)     { return nil, errNoCgo }
func generatePKCS11(*PKCS11URI) (*PKCS11Signer, error) { return nil, errNoCgo }
