#!/usr/bin/env bash
# bench/oci: `custody verify oci://REF` of an image with a provenance and an
# SBOM attestation attached, against stock cosign v3 `verify-attestation
# --new-bundle-format` of the same image from the same local registry; whole
# processes, the same hyperfine run. Goal: custody <= 0.5x cosign's time.
#
# Needs hyperfine. Uses $CUSTODY_TEST_REGISTRY when set (host:port, plain
# HTTP), else starts Debian's docker-registry with scripts/registry; cosign
# from $CUSTODY_TEST_COSIGN, else scripts/tool cosign-v3.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "bench/oci: needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
work=$(mktemp -d)
cleanup() {
	[ -f "$work/registry/registry.pid" ] && kill "$(cat "$work/registry/registry.pid")" 2>/dev/null || true
	rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
results=${RESULTS:-bench/oci/results.md}
runs=${RUNS:-20}

go build -o "$work/custody" ./cmd/custody
go build -o "$work/pushimage" ./bench/oci/pushimage
cosign=${CUSTODY_TEST_COSIGN:-$(scripts/tool cosign-v3)}
reg=${CUSTODY_TEST_REGISTRY:-$(CUSTODY_REGISTRY_PORT=$((20000 + RANDOM % 30000)) scripts/registry docker-registry "$work/registry")}

cd "$work"
export CUSTODY_PASSWORD=bench HOME=$work XDG_CONFIG_HOME=$work/config
./custody key generate --out release >/dev/null
ref=$(./pushimage "$reg/bench-$RANDOM:v1")
cat > prov.json <<'JSON'
{"buildDefinition":{"buildType":"https://example.com/build/v1","externalParameters":{"ref":"main"}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}
JSON
cat > sbom.json <<'JSON'
{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"left-pad","version":"1.3.0","purl":"pkg:npm/left-pad@1.3.0"}]}
JSON
./custody attest --key release.key --insecure-registry "$reg" --predicate-type https://slsa.dev/provenance/v1 --predicate prov.json "oci://$ref" >/dev/null 2>&1
./custody attest --key release.key --insecure-registry "$reg" --predicate-type https://cyclonedx.org/bom --predicate sbom.json "oci://$ref" >/dev/null 2>&1
# cosign wants a trusted root with the new bundle format; the bundles carry
# no log entry (custody attest signs offline), so both skip the log.
root=$OLDPWD/testdata/corpus/public-good-trusted_root.json
custody_cmd="./custody verify --key release.pub --insecure-registry $reg oci://$ref"
cosign_cmd="$cosign verify-attestation --new-bundle-format --key release.pub --type slsaprovenance1 --insecure-ignore-tlog --trusted-root $root $ref"
# Both must verify before they are timed.
$custody_cmd >/dev/null
$cosign_cmd >/dev/null 2>&1
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
hyperfine -N --warmup 3 --runs "$runs" --export-markdown verify.md --export-json verify.json \
	-n "custody verify oci://" "$custody_cmd" -n "cosign verify-attestation" "$cosign_cmd"
ratios=$(python3 -c '
import json
r = json.load(open("verify.json"))["results"]
cpu = [x["user"] + x["system"] for x in r]
print("custody / cosign: mean time **%.2fx**, fastest run %.2fx, CPU (user+sys, mean) **%.2fx** (%.1f ms against %.1f ms)" % (
    r[0]["mean"] / r[1]["mean"], r[0]["min"] / r[1]["min"], cpu[0] / cpu[1], cpu[0] * 1e3, cpu[1] * 1e3))')
cd - >/dev/null
{
	echo "# bench/oci results"
	echo
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; load $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after; $(go version | cut -d' ' -f3-); registry: $reg ($([ -n "${CUSTODY_TEST_REGISTRY:-}" ] && echo "\$CUSTODY_TEST_REGISTRY" || echo "docker-registry 2.8, no referrers API: tag-schema fallback"))"
	echo
	echo "An image with a SLSA provenance and a CycloneDX SBOM attestation attached by custody attest"
	echo "(Sigstore bundle v0.3 referrers). custody verifies both bundles; cosign verifies the provenance."
	echo
	cat "$work/verify.md"
	echo
	echo "$ratios (goal <= 0.5x)"
} > "$results"
echo "results written to $results"
