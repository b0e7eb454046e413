package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/verify"
)

func addPackFlags(c *cobra.Command, f *verifyFlags) {
	fl := c.Flags()
	fl.StringVar(&f.pack, "pack", "", "evidence pack (custody pack): decide offline with the environment's policy it carries")
	fl.StringVar(&f.env, "env", "", "with --pack: the environment the artifact is to enter")
	fl.StringVar(&f.state, "state", "", "with --pack: the device's state file (default $XDG_STATE_HOME/custody/edge-state.json)")
	fl.StringArrayVar(&f.packKeys, "pack-key", nil, "with --pack: a pinned pack signer (PEM) besides the trust root's packer keys, e.g. a server's audit key")
}

// runVerifyPack is verify --pack: pack.Device with the flags, the
// decision printed as policy check prints it. Exit 0 allowed, 1 denied,
// quarantined or a refused pack, 2 a malformed pack or bad input.
func runVerifyPack(ctx context.Context, s *streams, f *verifyFlags, args []string) error {
	if f.server != "" || f.bundle != "" {
		return usageErr(errors.New("--pack carries the evidence: give no --server or --bundle"), "")
	}
	dg, err := artifactDigest(args, f.digest)
	if err != nil {
		return err
	}
	d := &pack.Device{PackPath: f.pack, TrustRootPath: f.trustRoot, StatePath: f.state,
		Options: pack.Options{Artifact: dg, Environment: f.env}}
	if f.env == "" {
		return usageErr(errors.New("--pack needs --env ENV"), "")
	}
	for _, p := range f.packKeys {
		pub, err := loadPublicKey(p)
		if err != nil {
			return err
		}
		d.PackKeys = append(d.PackKeys, pub)
	}
	if d.Extra, err = packExtraTrust(f); err != nil {
		return err
	}
	res, err := d.Verify(ctx)
	if err != nil {
		if errors.Is(err, pack.ErrMalformed) {
			return usageErr(fmt.Errorf("pack refused: %w", err), "")
		}
		return failErr(fmt.Errorf("pack refused: %w", err), packHint(err))
	}
	if f.jsonOut {
		if err := writeJSON(s.out, res); err != nil {
			return err
		}
	} else {
		res.WriteText(s.out)
	}
	return packVerdictErr(res)
}

// packVerdictErr is the exit of a decided pack.
func packVerdictErr(res *pack.Result) error {
	if res.Allowed {
		return nil
	}
	reason, fix := res.Refusal()
	return failErr(errors.New(reason), fix)
}

func packHint(err error) string {
	switch {
	case errors.Is(err, pack.ErrStale):
		return "make a new pack ('custody pack'); a device never decides on stale evidence"
	case errors.Is(err, pack.ErrRollback):
		return "this device has seen a newer log checkpoint: make a new pack from the current log"
	case errors.Is(err, pack.ErrSignature):
		return "the pack must be signed by a packer key of the trust root, or a key given with --pack-key"
	}
	return ""
}

// packExtraTrust is the device's own trust besides the pack's: --key and
// --trusted-root (may be nil).
func packExtraTrust(f *verifyFlags) (root.TrustedMaterial, error) {
	var tms root.TrustedMaterialCollection
	if f.key != "" {
		pub, err := loadPublicKey(f.key)
		if err != nil {
			return nil, err
		}
		tm, err := gate.KeyMaterial([]crypto.PublicKey{pub}...)
		if err != nil {
			return nil, usageErr(err, "")
		}
		tms = append(tms, tm)
	}
	if f.trustedRoot != "" {
		tm, err := verify.LoadTrustedRoot(f.trustedRoot)
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't load trusted root: %w", err), "")
		}
		tms = append(tms, tm)
	}
	if len(tms) == 0 {
		return nil, nil
	}
	return tms, nil
}
