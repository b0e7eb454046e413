package signer

// KMS key references, in the shapes sigstore's KMS providers accept
// (github.com/sigstore/sigstore/pkg/signature/kms/{aws,gcp,azure,hashivault}).
//
// custody links no cloud SDK: together they would add well over a hundred
// modules to a tool whose verifier must stay small, and none can be tested
// here without network and credentials. A KMS reference therefore parses
// strictly, and OpenKMS either hands it to a KMSOpener the caller supplies
// (the seam where a provider plugs in later, e.g. an adapter over sigstore's
// kms.SignerVerifier) or, with none, explains in one line what is missing.

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// KMS providers, named by their URI schemes.
const (
	KMSAWS   = "awskms"
	KMSGCP   = "gcpkms"
	KMSAzure = "azurekms"
	KMSVault = "hashivault"
)

// Errors of OpenKMS, returned wrapped; check with errors.Is.
var (
	// ErrNoKMSCredentials means the environment holds no credentials for
	// the provider; the message says which to set.
	ErrNoKMSCredentials = errors.New("no KMS credentials")
	// ErrKMSUnavailable means credentials look present, but no KMSOpener
	// was given: this custody has no client for the provider.
	ErrKMSUnavailable = errors.New("KMS signing is not built in")
)

// KMSRef is a parsed KMS key reference.
type KMSRef struct {
	// Provider is KMSAWS, KMSGCP, KMSAzure or KMSVault.
	Provider string
	// Ref is the reference as given.
	Ref string
	// Endpoint: awskms, the optional host[:port] of a KMS endpoint;
	// azurekms, the vault's URL (https://HOST/).
	Endpoint string
	// Key: awskms, the key ID, key ARN, "alias/NAME" or alias ARN;
	// gcpkms, the full resource name of the crypto key
	// (projects/P/locations/L/keyRings/R/cryptoKeys/K); azurekms, the key
	// name; hashivault, the transit key name.
	Key string
	// Version: gcpkms, the crypto key version; azurekms, the key version.
	// Empty means the provider's default (the primary or latest version).
	Version string
}

// KMSOpener opens a signing key held by a KMS. OpenKMS calls it with a
// reference that parsed; it must return a signer whose Sign runs in the KMS.
type KMSOpener interface {
	OpenKMS(ctx context.Context, ref *KMSRef) (crypto.Signer, error)
}

// KMSOpenerFunc adapts a function to KMSOpener.
type KMSOpenerFunc func(ctx context.Context, ref *KMSRef) (crypto.Signer, error)

// OpenKMS calls f.
func (f KMSOpenerFunc) OpenKMS(ctx context.Context, ref *KMSRef) (crypto.Signer, error) {
	return f(ctx, ref)
}

var kmsSchemes = []string{KMSAWS, KMSGCP, KMSAzure, KMSVault}

// IsKMSRef reports whether ref uses one of the KMS schemes (in any case).
func IsKMSRef(ref string) bool {
	for _, s := range kmsSchemes {
		if len(ref) >= len(s)+3 && strings.EqualFold(ref[:len(s)+3], s+"://") {
			return true
		}
	}
	return false
}

// The reference shapes of sigstore's providers (v1.10).
var (
	awsUUID   = `m?r?k?-?[A-Fa-f0-9]{8}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{12}`
	awsARN    = `arn:(?:aws|aws-us-gov|aws-cn):kms:[a-z0-9-]+:\d{12}:`
	awsHost   = `([^/]*)/`
	awsShapes = []*regexp.Regexp{
		regexp.MustCompile(`^awskms://` + awsHost + `(` + awsUUID + `)$`),
		regexp.MustCompile(`^awskms://` + awsHost + `(` + awsARN + `key/` + awsUUID + `)$`),
		regexp.MustCompile(`^awskms://` + awsHost + `(alias/.+)$`),
		regexp.MustCompile(`^awskms://` + awsHost + `(` + awsARN + `alias/.+)$`),
	}
	gcpShape   = regexp.MustCompile(`^gcpkms://(projects/([^/]+)/locations/([^/]+)/keyRings/([^/]+)/cryptoKeys/([^/]+))(?:/(?:cryptoKeyVersions|versions)/([^/]+))?$`)
	azureShape = regexp.MustCompile(`^azurekms://([^/]+)/([^/]+)(?:/([a-z0-9]*))?$`)
	vaultShape = regexp.MustCompile(`^hashivault://(\w(?:[\w-.]*\w)?)$`)
)

// ParseKMSRef parses a KMS key reference:
//
//	awskms://[ENDPOINT]/KEY-ID | /arn:aws:kms:REGION:ACCOUNT:key/KEY-ID | /alias/NAME | /arn:…:alias/NAME
//	gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]
//	azurekms://VAULT-HOST/KEY[/VERSION]
//	hashivault://KEY
//
// The scheme must be lower case, as sigstore's providers expect. The error
// shows the expected shape.
func ParseKMSRef(ref string) (*KMSRef, error) {
	scheme, _, ok := strings.Cut(ref, "://")
	if !ok {
		return nil, fmt.Errorf("%q is not a KMS reference", ref)
	}
	r := &KMSRef{Provider: scheme, Ref: ref}
	if strings.ContainsAny(ref, " \t\r\n?#") {
		return nil, fmt.Errorf("%s: reference %q contains a space, '?' or '#'", scheme, ref)
	}
	switch scheme {
	case KMSAWS:
		for _, re := range awsShapes {
			if m := re.FindStringSubmatch(ref); m != nil {
				r.Endpoint, r.Key = m[1], m[2]
				return r, nil
			}
		}
		return nil, fmt.Errorf("awskms: %q is not awskms://[ENDPOINT]/KEY-ID, /KEY-ARN, /alias/NAME or /ALIAS-ARN", ref)
	case KMSGCP:
		m := gcpShape.FindStringSubmatch(ref)
		if m == nil {
			return nil, fmt.Errorf("gcpkms: %q is not gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]", ref)
		}
		r.Key, r.Version = m[1], m[6]
		return r, nil
	case KMSAzure:
		m := azureShape.FindStringSubmatch(ref)
		if m == nil {
			return nil, fmt.Errorf("azurekms: %q is not azurekms://VAULT-HOST/KEY[/VERSION]", ref)
		}
		r.Endpoint, r.Key, r.Version = "https://"+m[1]+"/", m[2], m[3]
		return r, nil
	case KMSVault:
		m := vaultShape.FindStringSubmatch(ref)
		if m == nil {
			return nil, fmt.Errorf("hashivault: %q is not hashivault://KEY (letters, digits, '_', '-', '.')", ref)
		}
		r.Key = m[1]
		return r, nil
	}
	if IsKMSRef(ref) {
		return nil, fmt.Errorf("KMS scheme %q must be lower case", scheme)
	}
	return nil, fmt.Errorf("%w: %q keys are not supported", ErrUnsupportedKeyRef, scheme)
}

// OpenKMS parses ref and opens it with o. With o nil, as custody's own
// commands call it, it never reaches the network: it returns an error
// wrapping ErrNoKMSCredentials naming what to set when the environment holds
// no credentials for the provider, and otherwise one wrapping
// ErrKMSUnavailable.
func OpenKMS(ctx context.Context, ref string, o KMSOpener) (crypto.Signer, error) {
	r, err := ParseKMSRef(ref)
	if err != nil {
		return nil, err
	}
	if o != nil {
		s, err := o.OpenKMS(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("%s: couldn't open %s: %w", r.Provider, ref, err)
		}
		return s, nil
	}
	if err := kmsCredentials(r.Provider, os.Getenv); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s: %w: this custody has no %s client (use a key file or a PKCS#11 token, or sign through custody serve)",
		r.Provider, ErrKMSUnavailable, providerName[r.Provider])
}

var providerName = map[string]string{KMSAWS: "AWS KMS", KMSGCP: "Google Cloud KMS", KMSAzure: "Azure Key Vault", KMSVault: "HashiCorp Vault transit"}

// kmsCredentials reports, without network, whether the environment holds
// credentials of the kinds each provider's SDK looks for first.
func kmsCredentials(provider string, getenv func(string) string) error {
	home, _ := os.UserHomeDir()
	exists := func(p string) bool {
		if p == "" {
			return false
		}
		_, err := os.Stat(p)
		return err == nil
	}
	set := func(names ...string) bool {
		for _, n := range names {
			if getenv(n) == "" {
				return false
			}
		}
		return true
	}
	switch provider {
	case KMSAWS:
		if set("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") || set("AWS_PROFILE") || set("AWS_WEB_IDENTITY_TOKEN_FILE") ||
			set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || set("AWS_CONTAINER_CREDENTIALS_FULL_URI") ||
			exists(getenv("AWS_SHARED_CREDENTIALS_FILE")) || home != "" && exists(filepath.Join(home, ".aws", "credentials")) {
			return nil
		}
		return fmt.Errorf("awskms: %w (set AWS_ACCESS_KEY_ID or use an instance role)", noCreds("AWS"))
	case KMSGCP:
		if exists(getenv("GOOGLE_APPLICATION_CREDENTIALS")) ||
			home != "" && exists(filepath.Join(home, ".config", "gcloud", "application_default_credentials.json")) {
			return nil
		}
		return fmt.Errorf("gcpkms: %w (set GOOGLE_APPLICATION_CREDENTIALS or run 'gcloud auth application-default login')", noCreds("Google Cloud"))
	case KMSAzure:
		if set("AZURE_TENANT_ID", "AZURE_CLIENT_ID") && (set("AZURE_CLIENT_SECRET") || set("AZURE_CLIENT_CERTIFICATE_PATH") || set("AZURE_FEDERATED_TOKEN_FILE")) ||
			home != "" && exists(filepath.Join(home, ".azure", "azureProfile.json")) {
			return nil
		}
		return fmt.Errorf("azurekms: %w (set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run 'az login')", noCreds("Azure"))
	case KMSVault:
		if !set("VAULT_ADDR") {
			return fmt.Errorf("hashivault: %w (set VAULT_ADDR to the Vault server's URL)", noCreds("Vault address"))
		}
		if !set("VAULT_TOKEN") && !(home != "" && exists(filepath.Join(home, ".vault-token"))) {
			return fmt.Errorf("hashivault: %w (set VAULT_TOKEN or run 'vault login')", noCreds("Vault token"))
		}
		return nil
	}
	return fmt.Errorf("unknown KMS provider %q", provider)
}

// noCreds is ErrNoKMSCredentials with the provider's name in its text.
func noCreds(what string) error { return &kmsCredErr{what} }

type kmsCredErr struct{ what string }

func (e *kmsCredErr) Error() string {
	if strings.HasPrefix(e.what, "Vault") {
		return "no " + e.what
	}
	return "no " + e.what + " credentials"
}
func (e *kmsCredErr) Is(target error) bool { return target == ErrNoKMSCredentials }
