package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The referrers tag schema (OCI distribution spec 1.1, "Referrers Tag
// Schema") keeps a subject's referrers in an index tagged sha256-HEX that
// every writer reads, extends and writes back. Two writers that read the
// same index both write it back with only their own entry added, and the
// slower one drops the other's. custody writes the index itself (not
// through go-containerregistry, whose write has that race) and guards it
// twice:
//
//   - a conditional PUT: If-Match with the ETag the index was read with
//     (If-None-Match: * when there was none). A registry that honours it
//     answers 412 to the slower writer, which reads the index again: a
//     compare-and-swap, nothing dropped.
//   - a read-back: registries that ignore the condition (Debian's
//     distribution 2.8, go-containerregistry's registry) answer 201 to
//     both. After writing, custody waits fallbackSettle (at least four
//     times its own read-and-write) and reads the index again; while its
//     entry is missing it adds it again, up to fallbackAttempts rounds.
//
// On a registry without conditional PUTs a writer whose read and write lie
// further apart than the other's settle time can still drop an entry;
// docs/oci.md says so, and the referrers API has no such race.
const (
	fallbackAttempts = 10
	fallbackSettle   = 250 * time.Millisecond
)

// errPrecondition: the registry refused a conditional PUT (412), so the
// index changed since it was read.
var errPrecondition = errors.New("index changed since it was read")

// registryHTTP makes raw requests to one repository, authenticated for
// push and pull with the client's keychain, through the client's guarded
// transport.
type registryHTTP struct {
	hc   *http.Client
	repo name.Repository
}

func (c *Client) registryHTTP(ctx context.Context, repo name.Repository) (*registryHTTP, error) {
	auth, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		return nil, err
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, c.rt, []string{repo.Scope(transport.PushScope)})
	if err != nil {
		return nil, err
	}
	return &registryHTTP{hc: &http.Client{Transport: rt}, repo: repo}, nil
}

// do sends one request to /v2/<repo>/<path> and returns the response when
// its status is one of ok (the body read, at most MaxManifestBytes), else
// the registry's error as a *transport.Error. A 5xx, 408 or 429 is tried
// twice more, as go-containerregistry does: distribution 2.8 answers 500
// to a read of a tag that another request is writing.
func (h *registryHTTP) do(ctx context.Context, method, path string, body []byte, hdr map[string]string, ok ...int) (*http.Response, []byte, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/%s", h.repo.Registry.Scheme(), h.repo.RegistryStr(), h.repo.RepositoryStr(), path)
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("User-Agent", "custody")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := h.hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		if transient(resp.StatusCode) && attempt < 2 {
			resp.Body.Close()
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(time.Duration(200<<attempt) * time.Millisecond):
			}
			continue
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusPreconditionFailed {
			return resp, nil, errPrecondition
		}
		if err := transport.CheckError(resp, ok...); err != nil {
			return resp, nil, err
		}
		b, err := readAll(resp.Body, MaxManifestBytes)
		return resp, b, err
	}
}

func transient(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// putReferrer PUTs the referrer manifest raw (described by add) by its
// digest. When the registry keeps no referrers list of its own (no
// OCI-Subject header in its answer, and no referrers API) it adds add to
// subject's tag-schema index.
func (c *Client) putReferrer(ctx context.Context, repo name.Repository, raw []byte, add v1.Descriptor, subject string) error {
	h, err := c.registryHTTP(ctx, repo)
	if err != nil {
		return err
	}
	resp, _, err := h.do(ctx, http.MethodPut, "manifests/"+add.Digest.String(), raw,
		map[string]string{"Content-Type": string(types.OCIManifestSchema1)}, http.StatusOK, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return err
	}
	if resp.Header.Get("OCI-Subject") == subject {
		return nil
	}
	// Some registries with the referrers API send no OCI-Subject; ask.
	resp, _, err = h.do(ctx, http.MethodGet, "referrers/"+subject, nil,
		map[string]string{"Accept": string(types.OCIImageIndex)}, http.StatusOK, http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == string(types.OCIImageIndex) {
		return nil
	}
	return c.addToFallback(ctx, h, fallbackTag(subject), add)
}

// addToFallback adds add to the index tagged tag, guarded as the comment
// at the top of this file says.
func (c *Client) addToFallback(ctx context.Context, h *registryHTTP, tag string, add v1.Descriptor) error {
	for range fallbackAttempts {
		start := time.Now()
		idx, etag, err := h.fallbackIndex(ctx, tag)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(idx.Manifests, func(d v1.Descriptor) bool { return d.Digest == add.Digest }) {
			return nil // listed: before custody wrote, or still after the settle time
		}
		if len(idx.Manifests) >= MaxReferrers {
			return fmt.Errorf("referrers index %s already lists %d manifests (custody reads at most %d)", tag, len(idx.Manifests), MaxReferrers)
		}
		idx.Manifests = append(idx.Manifests, add)
		slices.SortFunc(idx.Manifests, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
		raw, err := json.Marshal(idx)
		if err != nil {
			return err
		}
		cond := map[string]string{"Content-Type": string(types.OCIImageIndex), "If-None-Match": "*"}
		if etag != "" {
			cond = map[string]string{"Content-Type": string(types.OCIImageIndex), "If-Match": etag}
		}
		_, _, err = h.do(ctx, http.MethodPut, "manifests/"+tag, raw, cond, http.StatusOK, http.StatusCreated, http.StatusAccepted)
		wait := max(c.settle, 4*time.Since(start))
		switch {
		case errors.Is(err, errPrecondition):
			// Another writer won: read again soon, at a jittered time.
			wait = time.Duration(rand.Int64N(int64(50 * time.Millisecond)))
		case err != nil:
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return fmt.Errorf("referrers index %s: concurrent writers dropped custody's entry %d times; attach again", tag, fallbackAttempts)
}

// fallbackIndex reads the index tagged tag and the ETag it came with; an
// empty index when there is none yet.
func (h *registryHTTP) fallbackIndex(ctx context.Context, tag string) (*v1.IndexManifest, string, error) {
	resp, b, err := h.do(ctx, http.MethodGet, "manifests/"+tag, nil,
		map[string]string{"Accept": string(types.OCIImageIndex)}, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode == http.StatusNotFound {
		return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}, "", nil
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil || idx.SchemaVersion != 2 || idx.MediaType != types.OCIImageIndex {
		return nil, "", fmt.Errorf("tag %s is not an OCI image index, so not a referrers index", tag)
	}
	// A descriptor without a digest would be written back as ":", which
	// no registry or reader takes: refuse the index rather than rewrite
	// the tag with it.
	for i, d := range idx.Manifests {
		if _, err := v1.NewHash(d.Digest.String()); err != nil {
			return nil, "", fmt.Errorf("tag %s: referrers index entry %d has no valid digest", tag, i)
		}
	}
	return &idx, resp.Header.Get("ETag"), nil
}
