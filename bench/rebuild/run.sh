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
# BEFORE=<commit> adds custody built at that commit to the same hyperfine
# run, for a before/after comparison under the same load.
if [ -n "${BEFORE:-}" ]; then
	mkdir "$WORK/before-src"
	git archive "$BEFORE" | tar -x -C "$WORK/before-src"
	(cd "$WORK/before-src" && go build -o "$WORK/custody-before" ./cmd/custody)
fi
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
# REBUILDER_KEY=<ref> signs with another rebuilder key than the generated,
# scrypt-encrypted rebuilder.key, e.g. a pkcs11: URI of the SoftHSM2 token of
# scripts/softhsm (its PIN from CUSTODY_PKCS11_PIN).
RKEY=${REBUILDER_KEY:-rebuilder.key}
REBUILD="rebuild --force --key '$RKEY' --key-pub builder.pub --env GOCACHE --out rebuild.json repo/dist/app >/dev/null"
set -- -n bare "rm -rf bare && git clone -q repo bare && cd bare && sh build.sh" \
	-n 'custody rebuild' "$C $REBUILD"
if [ -n "${BEFORE:-}" ]; then
	set -- "$@" -n "custody rebuild @ $BEFORE" "$WORK/custody-before $REBUILD"
fi
# hyperfine also prints each command's user and system CPU time: on a
# loaded machine, CPU time says more than the wall-clock ratio.
hyperfine --warmup 2 --runs "$RUNS" --export-markdown "$WORK/results.md" "$@"
cat "$WORK/results.md"
