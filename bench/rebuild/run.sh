#!/bin/sh
# Rebuild overhead: `custody rebuild` of testdata/projects/reproducible-go
# against the bare rebuild of the same project (fresh git clone of the same
# commit + the same build command), in the same hyperfine run, same Go build
# cache. Goal: custody ≤ 1.2× the bare rebuild.
#
# The bare rebuild is what a rebuilder does by hand; custody adds verifying
# the original provenance, opening the rebuilder key (scrypt), probing the
# toolchains, the hermetic namespaces, hashing and signing the attestation.
set -eu
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
go build -o "$WORK/custody" ./cmd/custody
C="$WORK/custody"
export CUSTODY_PASSWORD=bench
export GOCACHE="$(go env GOCACHE)"
cp -R testdata/projects/reproducible-go "$WORK/repo"
cd "$WORK"
git -C repo init -q -b main
git -C repo add .
git -C repo -c user.name=bench -c user.email=bench@example.com commit -q -m init
"$C" key generate --out builder >/dev/null
"$C" key generate --out rebuilder >/dev/null
(cd repo && "$C" build --key ../builder.key --out-dir dist -- sh build.sh >/dev/null)
RUNS=${RUNS:-10}
hyperfine --warmup 2 --runs "$RUNS" --export-markdown "$WORK/results.md" \
	-n bare "rm -rf bare && git clone -q repo bare && cd bare && sh build.sh" \
	-n 'custody rebuild' "$C rebuild --force --key rebuilder.key --key-pub builder.pub --env GOCACHE --out rebuild.json repo/dist/app >/dev/null"
cat "$WORK/results.md"
