package oci_test

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"

	"github.com/custody-dev/custody/internal/oci"
)

// A client told which addresses it may reach (admission with
// --allow-registry '*': any registry, but not the cluster's insides)
// refuses a registry on an internal address before connecting to it,
// whether the reference names the address or a name that resolves to it.
func TestAllowAddressRefusesInternal(t *testing.T) {
	host, reg := serve(t, map[string]http.HandlerFunc{"/v2/app/manifests/v1": body(ociManifest, []byte(`{"schemaVersion":2}`))})
	public := func(_ string, a netip.Addr) bool { return oci.PublicAddress(a) }
	for _, h := range []string{host, "localhost:" + host[len("127.0.0.1:"):], "169.254.169.254", "[::1]:5000", "10.0.0.1:443"} {
		cl, err := oci.New(oci.Options{Insecure: []string{h}, AllowAddress: public, Timeout: 5e9})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Resolve(context.Background(), oci.Ref{Registry: h, Repository: "app", Tag: "v1"})
		if !errors.Is(err, oci.ErrAddressRefused) {
			t.Errorf("%s: %v, want ErrAddressRefused", h, err)
		}
	}
	if n := reg.hits.Load(); n != 0 {
		t.Errorf("the registry on loopback was asked %d times", n)
	}
	// named on purpose: reached
	cl, err := oci.New(oci.Options{Insecure: []string{host}, Timeout: 5e9,
		AllowAddress: func(h string, a netip.Addr) bool { return h == host || oci.PublicAddress(a) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Resolve(context.Background(), oci.Ref{Registry: host, Repository: "app", Tag: "v1"}); err != nil {
		t.Errorf("registry allowed by name: %v", err)
	}
}

func TestPublicAddress(t *testing.T) {
	for s, want := range map[string]bool{
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.100.100.200": false, "0.0.0.0": false, "::1": false, "fe80::1": false, "fd00:ec2::254": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "224.0.0.1": false, "::": false,
		"140.82.112.3": true, "2606:50c0:8000::153": true, "::ffff:140.82.112.3": true,
	} {
		if got := oci.PublicAddress(netip.MustParseAddr(s)); got != want {
			t.Errorf("PublicAddress(%s) = %v, want %v", s, got, want)
		}
	}
}
