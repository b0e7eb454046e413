// Package signingbench measures custody's signing rate with an ECDSA P-256
// key in a PKCS#11 token (SoftHSM2, through package signer's PKCS#11
// backend, RFC 7512 URIs) against the same kind of key in an encrypted key
// file, on the same statement in the same run. It holds benchmarks only;
// see README.md for how to run them and the numbers measured.
package signingbench
