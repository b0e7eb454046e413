package oci

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations cosign (v1, v2) puts on the layers of its .att and .sig tags.
const (
	annSignature   = "dev.cosignproject.cosign/signature"
	annCertificate = "dev.sigstore.cosign/certificate"
	annChain       = "dev.sigstore.cosign/chain"
	annRekorBundle = "dev.sigstore.cosign/bundle"
	annTimestamp   = "dev.sigstore.cosign/rfc3161timestamp"
)

// bundleV01 is the media type of the bundles made from cosign's tags: their
// log entries carry a signed entry timestamp but no inclusion proof, which
// only bundle v0.1 allows.
const bundleV01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"

// cosignTag reads cosign's sha256-HEX.att or .sig tag of subject; no tag
// means no evidence.
func (c *Client) cosignTag(ctx context.Context, repo name.Repository, subject, suffix string, opts []remote.Option) ([]Found, error) {
	tag := fallbackTag(subject) + suffix
	m, err := c.manifest(ctx, repo.Tag(tag), "", opts, []types.MediaType{types.OCIManifestSchema1, types.DockerManifestSchema2})
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var man v1.Manifest
	if err := json.Unmarshal(m.raw, &man); err != nil {
		return nil, fmt.Errorf("tag %s is not an image manifest", tag)
	}
	if len(man.Layers) > MaxLayers {
		return nil, fmt.Errorf("tag %s has more than %d layers", tag, MaxLayers)
	}
	var found []Found
	for i, l := range man.Layers {
		src := fmt.Sprintf("tag %s layer %d", tag, i+1)
		want := dsseMediaType
		if suffix == ".sig" {
			want = simpleSigningType
		}
		if string(l.MediaType) != want || !validDigest(l.Digest.String()) {
			c.log.Warn("skipping layer", "registry", repo.RegistryStr(), "source", src, "mediaType", oneLine(string(l.MediaType)))
			continue
		}
		blob, err := c.blob(repo, l.Digest.String(), MaxBundleBytes, opts)
		if err != nil {
			return nil, err
		}
		f, err := CosignLayerBundle(blob, want, l.Annotations)
		if err != nil {
			c.log.Warn("skipping layer", "registry", repo.RegistryStr(), "source", src, "reason", oneLine(err.Error()))
			continue
		}
		f.Source = src
		found = append(found, f)
	}
	return found, nil
}

// CosignLayerBundle turns one layer of a cosign .att tag (mediaType
// application/vnd.dsse.envelope.v1+json: a DSSE envelope) or .sig tag
// (application/vnd.dev.cosign.simplesigning.v1+json: the signed payload,
// its signature in an annotation) and the layer's annotations into a
// Sigstore bundle v0.1: the certificate chain or a public-key hint, the
// Rekor entry with its signed entry timestamp, and RFC 3161 timestamps.
// The result is unverified; it verifies only if what cosign stored does.
func CosignLayerBundle(blob []byte, mediaType string, ann map[string]string) (Found, error) {
	vm, err := cosignMaterial(ann)
	if err != nil {
		return Found{}, err
	}
	b := map[string]any{"mediaType": bundleV01, "verificationMaterial": vm}
	f := Found{}
	switch mediaType {
	case dsseMediaType:
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     []byte `json:"payload"`
			Signatures  []struct {
				KeyID string `json:"keyid"`
				Sig   []byte `json:"sig"`
			} `json:"signatures"`
		}
		if err := json.Unmarshal(blob, &env); err != nil || env.PayloadType == "" || len(env.Signatures) == 0 {
			return f, errors.New("layer is not a DSSE envelope")
		}
		sigs := make([]map[string]any, 0, len(env.Signatures))
		for _, s := range env.Signatures {
			sigs = append(sigs, map[string]any{"keyid": s.KeyID, "sig": s.Sig})
		}
		b["dsseEnvelope"] = map[string]any{"payloadType": env.PayloadType, "payload": env.Payload, "signatures": sigs}
		f.Format = FormatCosignAttestation
	case simpleSigningType:
		sig, err := base64.StdEncoding.DecodeString(ann[annSignature])
		if err != nil || len(sig) == 0 {
			return f, errors.New("signature annotation is missing or not base64")
		}
		sum := sha256.Sum256(blob)
		b["messageSignature"] = map[string]any{
			"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": sum[:]},
			"signature":     sig,
		}
		f.Format, f.Payload = FormatCosignSignature, blob
	default:
		return f, fmt.Errorf("layer media type %q is not cosign's", mediaType)
	}
	f.Bundle, err = json.Marshal(b)
	return f, err
}

// cosignMaterial builds a bundle's verificationMaterial from cosign's
// layer annotations.
func cosignMaterial(ann map[string]string) (map[string]any, error) {
	vm := map[string]any{}
	if certPEM := ann[annCertificate]; certPEM != "" {
		var ders []map[string]any
		rest := []byte(certPEM + "\n" + ann[annChain])
		for len(ders) < 10 {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type == "CERTIFICATE" {
				ders = append(ders, map[string]any{"rawBytes": blk.Bytes})
			}
		}
		if len(ders) == 0 {
			return nil, errors.New("certificate annotation holds no PEM certificate")
		}
		vm["x509CertificateChain"] = map[string]any{"certificates": ders}
	} else {
		vm["publicKey"] = map[string]any{"hint": ""}
	}
	entries := []any{}
	if s := ann[annRekorBundle]; s != "" {
		e, err := rekorEntry([]byte(s))
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	vm["tlogEntries"] = entries
	if s := ann[annTimestamp]; s != "" {
		var ts struct {
			SignedRFC3161Timestamp []byte `json:"SignedRFC3161Timestamp"`
		}
		if err := json.Unmarshal([]byte(s), &ts); err != nil || len(ts.SignedRFC3161Timestamp) == 0 {
			return nil, errors.New("timestamp annotation is not cosign's")
		}
		vm["timestampVerificationData"] = map[string]any{
			"rfc3161Timestamps": []any{map[string]any{"signedTimestamp": ts.SignedRFC3161Timestamp}},
		}
	}
	return vm, nil
}

// rekorEntry turns cosign's Rekor bundle annotation into a bundle tlog
// entry (transparency log entry with an inclusion promise).
func rekorEntry(s []byte) (map[string]any, error) {
	var rb struct {
		SET     []byte `json:"SignedEntryTimestamp"`
		Payload struct {
			Body           []byte `json:"body"`
			IntegratedTime int64  `json:"integratedTime"`
			LogIndex       int64  `json:"logIndex"`
			LogID          string `json:"logID"`
		} `json:"Payload"`
	}
	if err := json.Unmarshal(s, &rb); err != nil || len(rb.SET) == 0 || len(rb.Payload.Body) == 0 {
		return nil, errors.New("rekor bundle annotation is not cosign's")
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil || len(logID) == 0 {
		return nil, errors.New("rekor bundle annotation: log ID is not hex")
	}
	var kv struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(rb.Payload.Body, &kv); err != nil || kv.Kind == "" || kv.APIVersion == "" {
		return nil, errors.New("rekor bundle annotation: entry body has no kind")
	}
	return map[string]any{
		"logIndex":          strconv.FormatInt(rb.Payload.LogIndex, 10),
		"logId":             map[string]any{"keyId": logID},
		"kindVersion":       map[string]any{"kind": kv.Kind, "version": kv.APIVersion},
		"integratedTime":    strconv.FormatInt(rb.Payload.IntegratedTime, 10),
		"inclusionPromise":  map[string]any{"signedEntryTimestamp": rb.SET},
		"canonicalizedBody": rb.Payload.Body,
	}, nil
}
