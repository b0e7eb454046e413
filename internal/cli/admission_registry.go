package cli

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/admission"
	"github.com/custody-dev/custody/internal/oci"
)

// admissionRegistryFlags are custody admission's registry flags: /mutate
// and evidence read from the images' registries.
type admissionRegistryFlags struct {
	mutate, evidence     bool
	config, caFile       string
	insecure, registries []string
}

func addAdmissionRegistryFlags(c *cobra.Command, f *admissionRegistryFlags) {
	fl := c.Flags()
	fl.BoolVar(&f.mutate, "mutate", false, "also serve POST /mutate: pin image tags to the digests their registries serve (a JSON patch)")
	fl.BoolVar(&f.evidence, "registry-evidence", false, "also read the evidence attached to each image in its registry (referrers, cosign .att/.sig)")
	fl.StringSliceVar(&f.registries, "allow-registry", nil, "registry (HOST[:PORT]; docker.io for Docker Hub; * for any) the webhook may call for --mutate and --registry-evidence; repeated or comma-separated")
	fl.StringVar(&f.config, "registry-config", "", "Docker config file with registry credentials (default: $DOCKER_CONFIG/config.json, ~/.docker/config.json, Podman's auth.json)")
	fl.StringVar(&f.caFile, "registry-ca", "", "PEM bundle of CAs trusted for registry TLS, besides the system's (private registries)")
	fl.StringSliceVar(&f.insecure, "insecure-registry", nil, "registry (HOST[:PORT]) reached over plain HTTP; no other is")
}

// configure sets cfg's tag resolver and registry evidence from the flags:
// one registry client, each of its operations bounded by timeout (the
// webhook's deadline bounds them too).
func (f *admissionRegistryFlags) configure(cfg *admission.Config, timeout time.Duration) error {
	if !f.mutate && !f.evidence {
		if len(f.registries) > 0 || f.config != "" || f.caFile != "" || len(f.insecure) > 0 {
			return usageErr(errors.New("registry flags without --mutate or --registry-evidence"), "")
		}
		return nil
	}
	if len(f.registries) == 0 {
		return usageErr(errors.New("--mutate and --registry-evidence call the registries objects name: say which with --allow-registry"),
			"e.g. --allow-registry ghcr.io,registry.example.com:5000 (or '*' for any)")
	}
	cl, err := oci.New(oci.Options{ConfigPath: f.config, CAFile: f.caFile, Insecure: f.insecure, Timeout: timeout,
		AllowAddress: f.allowAddress()})
	if err != nil {
		return usageErr(err, "check --registry-config, --registry-ca and --insecure-registry")
	}
	cfg.Registries = f.registries
	if f.mutate {
		cfg.Resolver = admission.OCIResolver(cl)
	}
	if f.evidence {
		cfg.Attached = admission.OCIAttached(cl)
	}
	return nil
}

// allowAddress is the registry client's address check: with '*' among
// the registries, whoever can send the webhook a review names the host,
// so only public addresses are reached, except at hosts named on purpose
// (--allow-registry HOST[:PORT], --insecure-registry). nil without '*'.
func (f *admissionRegistryFlags) allowAddress() func(string, netip.Addr) bool {
	if !slices.Contains(f.registries, "*") {
		return nil
	}
	named := append(slices.Clone(f.registries), f.insecure...)
	return func(host string, a netip.Addr) bool {
		name, _, err := net.SplitHostPort(host)
		if err != nil {
			name = host
		}
		return oci.PublicAddress(a) || slices.Contains(named, host) || slices.Contains(named, name)
	}
}
