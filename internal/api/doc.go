// Package api holds the types and constants of custody's HTTP API (the
// routes are listed in package server's documentation): what `custody
// serve` answers and what package client sends and reads. Both sides
// import it; the client does not link the server (its index, log and policy
// engine).
//
// The JSON encoding of every type here is the wire format: field names and
// omission rules are pinned by golden files in testdata/ and change only
// with a new API version. The Decode functions parse answers from a server
// the client does not trust: they refuse malformed, oversized-in-count and
// out-of-order answers and never panic (see the Fuzz targets).
package api
