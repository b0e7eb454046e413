#!/bin/sh
# Rebuild overhead: `custody rebuild` of testdata/projects/reproducible-go
# against the bare rebuild of the same project (fresh git clone of the same
# commit + the same build command), in the same hyperfine run. Goal:
# custody ≤ 1.2× the bare rebuild.
#
# Two settings (MODE=warm|cold|both, default both):
# - warm: both share the user's Go build cache (custody via --env GOCACHE,
#   an explicit opt-in): the build takes ~0.3 s and custody's fixed costs
#   dominate;
# - cold: both start from an empty Go build cache on every run (bare: a
#   cache directory emptied by hyperfine --prepare; custody: its default,
#   the hermetic build's fresh HOME, so no shared cache is trusted). This is
#   the setting an independent rebuilder should use: a shared cache can be
#   poisoned.
#
# The bare rebuild is what a rebuilder does by hand; custody adds verifying
# the original provenance, opening the rebuilder key (scrypt), probing the
# recorded toolchains, the hermetic namespaces, hashing and signing the
# attestation.
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
# The before binary rebuilds what the before binary built (its provenance
# records what custody build recorded then, e.g. every toolchain on PATH).
if [ -n "${BEFORE:-}" ]; then
	git clone -q repo repo-before
	(cd repo-before && "$WORK/custody-before" build --key ../builder.key --out-dir dist -- sh build.sh >/dev/null)
fi
RUNS=${RUNS:-10}
COLD_RUNS=${COLD_RUNS:-$RUNS}
MODE=${MODE:-both}
# REBUILDER_KEY=<ref> signs with another rebuilder key than the generated,
# scrypt-encrypted rebuilder.key, e.g. a pkcs11: URI of the SoftHSM2 token of
# scripts/softhsm (its PIN from CUSTODY_PKCS11_PIN).
RKEY=${REBUILDER_KEY:-rebuilder.key}
REBUILD="rebuild --force --key '$RKEY' --key-pub builder.pub --out rebuild.json repo/dist/app >/dev/null"
REBUILD_BEFORE="rebuild --force --key '$RKEY' --key-pub builder.pub --out rebuild-before.json repo-before/dist/app >/dev/null"
# Toolchains the build recorded, i.e. what every rebuild probes.
for r in repo ${BEFORE:+repo-before}; do
	echo "$r: recorded toolchains $("$C" inspect --json "$r/dist/app.sigstore.json" | tr -d '\n ' | grep -o '"toolchains":{[^}]*}' || true)"
done
echo "load before: $(uptime)"
# hyperfine also prints each command's user and system CPU time: on a
# loaded machine, CPU time says more than the wall-clock ratio.
if [ "$MODE" != cold ]; then
	set -- -n bare "rm -rf bare && git clone -q repo bare && cd bare && sh build.sh" \
		-n 'custody rebuild' "$C $REBUILD --env GOCACHE"
	if [ -n "${BEFORE:-}" ]; then
		set -- "$@" -n "custody rebuild @ $BEFORE" "$WORK/custody-before $REBUILD_BEFORE --env GOCACHE"
	fi
	echo "== warm: shared Go build cache $GOCACHE"
	hyperfine --warmup 2 --runs "$RUNS" --export-markdown "$WORK/warm.md" "$@"
	cat "$WORK/warm.md"
fi
if [ "$MODE" != warm ]; then
	[ "$MODE" = both ] && echo "load before cold: $(uptime)"
	COLD="$WORK/gocache-cold"
	set -- -n 'bare (cold)' "rm -rf bare && git clone -q repo bare && cd bare && GOCACHE='$COLD' sh build.sh" \
		-n 'custody rebuild (cold)' "$C $REBUILD"
	if [ -n "${BEFORE:-}" ]; then
		set -- "$@" -n "custody rebuild @ $BEFORE (cold)" "$WORK/custody-before $REBUILD_BEFORE"
	fi
	echo "== cold: empty Go build cache every run"
	hyperfine --prepare "rm -rf '$COLD' && mkdir '$COLD'" --runs "$COLD_RUNS" \
		--export-markdown "$WORK/cold.md" "$@"
	cat "$WORK/cold.md"
fi
