#!/bin/sh
# Sandbox overhead (issue 18): the same build of
# testdata/projects/reproducible-go with and without the bubblewrap sandbox,
# in one hyperfine run, warm shared Go build cache (read-only in the sandbox).
#
#   bare               git clone + sh build.sh, no sandbox (the baseline)
#   bare in sandbox    the same clone + build run by bench/rebuild/sandboxrun,
#                      i.e. internal/sandbox exactly as custody uses it
#   custody rebuild    the whole rebuild (verify, clone, probe in the
#                      sandbox, replay in the sandbox, compare, sign)
#   build              custody build (no sandbox) in a clean clone
#   build --hermetic   custody build --hermetic (in the sandbox)
#   sandbox: true      the sandbox's own start and teardown (sandboxrun true)
#
# BEFORE=<commit> adds custody built at that commit (e.g. faee1b3, the last
# one without the sandbox: a network namespace only) running the same
# rebuild and build --hermetic, in the same hyperfine run.
#
# Goal: the sandbox adds ≤ 1.2× to the bare build; results in results.md.
set -eu
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 2; }
command -v bwrap >/dev/null || { echo "needs bubblewrap (apt-get install bubblewrap)"; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
go build -o "$WORK/custody" ./cmd/custody
go build -o "$WORK/sandboxrun" ./bench/rebuild/sandboxrun
C="$WORK/custody"
S="$WORK/sandboxrun"
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
echo "load before: $(uptime)"
BUILD="build --key ../builder.key --out-dir dist --sbom=false --bundle ../b.json"
set -- -n 'sandbox: true' "$S -tools go -- /bin/true"
if [ -n "${BEFORE:-}" ]; then
	B="$WORK/custody-before"
	set -- "$@" -n "custody rebuild @ $BEFORE" "$B rebuild --force --key rebuilder.key --key-pub builder.pub --out rebuild-before.json --env GOCACHE repo/dist/app >/dev/null" \
		-n "custody build --hermetic @ $BEFORE" "rm -rf b && git clone -q repo b && cd b && $B $BUILD --hermetic --env GOCACHE -- sh build.sh >/dev/null"
fi
hyperfine --warmup 2 --runs "$RUNS" --export-markdown "$WORK/sandbox.md" "$@" \
	-n bare "rm -rf bare && git clone -q repo bare && cd bare && sh build.sh" \
	-n 'bare in sandbox' "rm -rf bare && git clone -q repo bare && cd bare && $S -tools go -env GOCACHE -- sh build.sh" \
	-n 'custody rebuild' "$C rebuild --force --key rebuilder.key --key-pub builder.pub --out rebuild.json --env GOCACHE repo/dist/app >/dev/null" \
	-n 'custody build' "rm -rf b && git clone -q repo b && cd b && $C $BUILD -- sh build.sh >/dev/null" \
	-n 'custody build --hermetic' "rm -rf b && git clone -q repo b && cd b && $C $BUILD --hermetic --env GOCACHE -- sh build.sh >/dev/null"
cat "$WORK/sandbox.md"
echo "load after: $(uptime)"
