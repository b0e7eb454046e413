#!/usr/bin/env bash
# Whole-process benchmarks of the custody CLI, each against a baseline run in
# the same invocation (see README.md). Needs hyperfine (apt install hyperfine);
# the cosign comparison runs when cosign is on PATH (or in $(go env GOPATH)/bin).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "bench/cli: needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/custody" ./cmd/custody
C="$work/custody"
corpus=$PWD/testdata/corpus
results=${RESULTS:-bench/cli/results.md}
{
echo "# bench/cli results"
echo
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; $(go version | cut -d' ' -f3-)"
echo
} > "$results"

# 1. custody verify vs cosign verify-blob-attestation on a real SLSA bundle.
cosign=$(command -v cosign || true)
[ -n "$cosign" ] || { [ -x "$(go env GOPATH)/bin/cosign" ] && cosign="$(go env GOPATH)/bin/cosign"; } || true
B=$corpus/delegator-v2.0.0-workflow_dispatch.sigstore.json
A=$corpus/delegator-v2.0.0-workflow_dispatch.bin
ID=https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/v2.0.0
ISS=https://token.actions.githubusercontent.com
custody_verify="$C verify --bundle $B --trusted-root $corpus/public-good-trusted_root.json --certificate-identity $ID --certificate-oidc-issuer $ISS $A"
if [ -n "$cosign" ]; then
	cosign_verify="$cosign verify-blob-attestation --bundle $B --new-bundle-format --trusted-root $corpus/public-good-trusted_root.json --certificate-identity $ID --certificate-oidc-issuer $ISS --type slsaprovenance1 $A"
	hyperfine -N --warmup 3 --runs 30 --export-markdown "$work/verify.md" -n custody "$custody_verify" -n cosign "$cosign_verify"
	echo "## verify of a real SLSA bundle: custody vs cosign ($("$cosign" version 2>/dev/null | grep GitVersion | awk '{print $2}'))" >> "$results"
	echo >> "$results"; cat "$work/verify.md" >> "$results"; echo >> "$results"
else
	echo "cosign not found: skipping the verify comparison" >&2
	echo "## verify comparison skipped: cosign not installed" >> "$results"
fi

# 2. custody build overhead over the bare build command, 1,000 output files.
mkdir -p "$work/proj"
cd "$work/proj"
cat > build.sh <<'SH'
rm -rf dist; mkdir -p dist
i=0; while [ $i -lt 1000 ]; do head -c 4096 /dev/urandom > dist/f$i; i=$((i+1)); done
SH
git init -q -b main && printf 'dist/\nrelease.*\n' > .gitignore && git add . && git -c user.name=b -c user.email=b@b commit -qm init
CUSTODY_PASSWORD=bench "$C" key generate --out release >/dev/null
export CUSTODY_PASSWORD=bench
hyperfine --warmup 1 --runs 10 --export-markdown "$work/build.md" \
	-n bare "sh build.sh" \
	-n custody "$C build --key release.key --out-dir dist -- sh build.sh"
cd - >/dev/null
echo "## custody build overhead, 1,000 output files (includes key decryption: scrypt)" >> "$results"
echo >> "$results"; cat "$work/build.md" >> "$results"
echo "results written to $results"
