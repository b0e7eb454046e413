package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/fsutil"
)

// Limits on what a registry may make custody read. A bundle is a few KiB;
// an SBOM attestation may reach a few MiB.
const (
	MaxManifestBytes = 4 << 20  // OCI asks registries to accept at least 4 MiB
	MaxBundleBytes   = 32 << 20 // same as a bundle file (internal/cli)
	MaxReferrers     = 256      // descriptors in one referrers list
	MaxLayers        = 64       // layers in one cosign .att/.sig manifest
	maxResponseBytes = MaxBundleBytes + 1<<20
	maxCAFileBytes   = 1 << 20
	maxConfigBytes   = 1 << 20
)

// DefaultTimeout bounds one operation (Resolve, Evidence, Attach) when
// Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Options configures a Client. The zero value reads credentials from the
// standard Docker config locations, trusts the system CAs, refuses plain
// HTTP everywhere and gives each operation DefaultTimeout.
type Options struct {
	// ConfigPath is a Docker config.json (auths, credsStore, credHelpers).
	// Empty: $DOCKER_CONFIG/config.json, ~/.docker/config.json, then
	// Podman's auth.json, as cosign and crane read them.
	ConfigPath string
	// CAFile is a PEM bundle trusted for registry TLS, in addition to the
	// system roots.
	CAFile string
	// Insecure lists registries ("host:port", or "host" for every port)
	// that may be reached over plain HTTP. No other registry is.
	Insecure []string
	// Timeout bounds each operation, retries included. Zero: DefaultTimeout.
	Timeout time.Duration
	// Logger receives what was skipped and why (nil: discard). Credentials
	// are never logged.
	Logger *slog.Logger
	// AllowAddress, when set, is asked before every request (token
	// realms and redirects included) whether host, the URL's
	// "host[:port]", may be reached at each address it resolves to; one
	// refusal fails the request before any connection (ErrAddressRefused).
	// nil: any address. PublicAddress is the usual answer for hosts not
	// named on purpose.
	AllowAddress func(host string, addr netip.Addr) bool
}

// ErrAddressRefused is wrapped when Options.AllowAddress refused a host's
// address.
var ErrAddressRefused = errors.New("address refused")

// PublicAddress reports whether a is a unicast address of the internet:
// not loopback, private (RFC 1918, IPv6 ULA), link-local (cloud metadata
// at 169.254.169.254), shared (100.64.0.0/10), unspecified or multicast.
func PublicAddress(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !shared.Contains(a)
}

var shared = netip.MustParsePrefix("100.64.0.0/10")

// Client talks to OCI registries. It is safe for concurrent use.
type Client struct {
	timeout  time.Duration
	insecure []string
	keychain authn.Keychain
	rt       http.RoundTripper
	log      *slog.Logger
	settle   time.Duration // fallbackSettle; tests of this package shorten it
}

// New checks opts and returns a Client. It reads the CA bundle and the
// Docker config now, so a missing file is an error here, not at first use.
func New(opts Options) (*Client, error) {
	c := &Client{timeout: opts.Timeout, insecure: opts.Insecure, log: opts.Logger, settle: fallbackSettle}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, h := range opts.Insecure {
		if err := checkHost(h); err != nil {
			return nil, fmt.Errorf("insecure registry %w", err)
		}
	}
	// No CA bundle: RootCAs stays nil and crypto/tls reads the system
	// roots at the first TLS handshake. Parsing them costs more CPU than
	// a whole verification of an image on a plain-HTTP registry
	// (bench/oci), so a command that makes no TLS connection never does.
	var pool *x509.CertPool
	if opts.CAFile != "" {
		pem, err := fsutil.ReadFileLimited(opts.CAFile, maxCAFileBytes)
		if err != nil {
			return nil, fmt.Errorf("couldn't read registry CA bundle: %w", err)
		}
		if pool, err = x509.SystemCertPool(); err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry CA bundle %s holds no PEM certificate", opts.CAFile)
		}
	}
	c.keychain = authn.DefaultKeychain
	if opts.ConfigPath != "" {
		kc, err := fileKeychain(opts.ConfigPath)
		if err != nil {
			return nil, err
		}
		c.keychain = kc
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   c.timeout,
		ResponseHeaderTimeout: c.timeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       30 * time.Second,
	}
	c.rt = &guard{base: base, allowHTTP: c.allowsHTTP, allowAddr: opts.AllowAddress}
	return c, nil
}

// allowsHTTP reports whether host ("host:port") was named insecure, as
// "host:port" or as a bare host for every port.
func (c *Client) allowsHTTP(host string) bool {
	for _, h := range c.insecure {
		if h == host || !hasPort(h) && h == hostOnly(host) {
			return true
		}
	}
	return false
}

func hasPort(h string) bool {
	if strings.HasPrefix(h, "[") {
		return strings.Contains(h, "]:")
	}
	return strings.Contains(h, ":")
}

// hostOnly drops the port, keeping IPv6 brackets.
func hostOnly(hostport string) string {
	if !hasPort(hostport) {
		return hostport
	}
	return hostport[:strings.LastIndexByte(hostport, ':')]
}

// fileKeychain reads credentials from one Docker config file, with its
// credential store and per-registry helpers.
func fileKeychain(path string) (authn.Keychain, error) {
	b, err := fsutil.ReadFileLimited(path, maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't read registry config: %w", err)
	}
	cf, err := config.LoadFromReader(strings.NewReader(string(b)))
	if err != nil {
		// The parser's message may quote the file; never echo credentials.
		return nil, fmt.Errorf("registry config %s is not a Docker config.json", path)
	}
	return &configKeychain{cf: cf}, nil
}

type configKeychain struct{ cf *configfile.ConfigFile }

func (k *configKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	for _, key := range []string{r.String(), r.RegistryStr(), "https://" + r.RegistryStr(), "http://" + r.RegistryStr()} {
		ac, err := k.cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("credential helper for %s failed", r.RegistryStr())
		}
		if ac.Username != "" || ac.Password != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != "" {
			return authn.FromConfig(authn.AuthConfig{
				Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
				IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
			}), nil
		}
	}
	return authn.Anonymous, nil
}

// guard is the client's innermost transport: plain HTTP only to insecure
// hosts (anything else is sent over TLS, redirects included), and no
// response body longer than maxResponseBytes.
type guard struct {
	base      http.RoundTripper
	allowHTTP func(host string) bool
	allowAddr func(host string, addr netip.Addr) bool
}

// checkAddress asks allowAddr about every address host resolves to. The
// transport resolves the name again to connect: a name whose answers
// change between the two (DNS rebinding) is not covered.
func (g *guard) checkAddress(req *http.Request) error {
	name := req.URL.Hostname()
	addrs := []netip.Addr{}
	if a, err := netip.ParseAddr(name); err == nil {
		addrs = append(addrs, a)
	} else {
		if addrs, err = net.DefaultResolver.LookupNetIP(req.Context(), "ip", name); err != nil {
			return err
		}
	}
	for _, a := range addrs {
		if !g.allowAddr(req.URL.Host, a) {
			return fmt.Errorf("%w: %s is at %s, an internal address (name it on purpose to reach it)", ErrAddressRefused, req.URL.Host, a)
		}
	}
	return nil
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if g.allowAddr != nil {
		if err := g.checkAddress(req); err != nil {
			return nil, err
		}
	}
	switch req.URL.Scheme {
	case "https":
	case "http":
		if !g.allowHTTP(req.URL.Host) {
			req = req.Clone(req.Context())
			req.URL.Scheme = "https"
		}
	default:
		return nil, fmt.Errorf("refusing URL scheme %q", req.URL.Scheme)
	}
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &capped{rc: resp.Body, left: maxResponseBytes}
	return resp, nil
}

// ErrTooLarge is wrapped when a registry sends more than custody reads
// (MaxManifestBytes, MaxBundleBytes).
var ErrTooLarge = errors.New("response too large")

type capped struct {
	rc   io.ReadCloser
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("%w (over %d bytes)", ErrTooLarge, maxResponseBytes)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capped) Close() error { return c.rc.Close() }

// repo is the go-containerregistry name of r's repository, insecure when
// r's registry was named so.
func (c *Client) repo(r Ref) (name.Repository, error) {
	var opts []name.Option
	if c.allowsHTTP(r.Registry) {
		opts = append(opts, name.Insecure)
	}
	return name.NewRepository(r.Registry+"/"+r.Repository, append(opts, name.StrictValidation)...)
}

// remoteOpts are the options of every go-containerregistry call.
func (c *Client) remoteOpts(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(c.rt),
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithUserAgent("custody"),
		remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}),
	}
}

// withTimeout bounds one operation.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// readAll reads r up to limit bytes, failing past it.
func readAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w (over %d bytes)", ErrTooLarge, limit)
	}
	return b, nil
}
