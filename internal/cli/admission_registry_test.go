package cli

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/admission"
	"github.com/custody-dev/custody/internal/oci"
)

// With --allow-registry '*', /mutate resolves tags at whatever host an
// object names: the cloud's metadata service and the cluster's own
// addresses are refused before any connection, unless named on purpose.
func TestAdmissionAnyRegistryNotInternal(t *testing.T) {
	f := admissionRegistryFlags{mutate: true, registries: []string{"*"}, insecure: []string{"10.0.0.9:5000"}}
	var cfg admission.Config
	if err := f.configure(&cfg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, reg := range []string{"169.254.169.254", "127.0.0.1:5000", "localhost:5000", "[::1]:443"} {
		_, err := cfg.Resolver.Resolve(context.Background(), admission.Tag{Registry: reg, Repository: "app", Tag: "v1"})
		if !errors.Is(err, oci.ErrAddressRefused) {
			t.Errorf("%s: %v, want the address refused", reg, err)
		}
	}
	if a := f.allowAddress(); a == nil || a("10.0.0.9:5000", mustAddr("10.0.0.9")) != true || a("10.0.0.8:5000", mustAddr("10.0.0.8")) {
		t.Error("a host named with --insecure-registry is reached, another internal one is not")
	}
	if f := (admissionRegistryFlags{registries: []string{"registry.internal:5000"}}); f.allowAddress() != nil {
		t.Error("a list without '*' names every host on purpose: no address check")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
