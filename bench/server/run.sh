#!/bin/sh
# custody serve under slow, idle and memory-hungry clients, before and
# after the limits of issue 11 items 4 and 5, in one run (bench/server/main.go
# says what is measured). BEFORE is the build compared against (default: the
# commit before the limits landed); the driver itself is this tree's.
#
# Usage: bench/server/run.sh [driver flags]   e.g. -bundles 150 -size 1400000
#        BEFORE=COMMIT bench/server/run.sh
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/custody-server-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
before=${BEFORE:-668a0b5^}
mkdir -p "$work/src"
git -C "$root" archive "$before" | tar -x -C "$work/src"
(cd "$work/src" && go build -o "$work/custody-before" ./cmd/custody)
(cd "$root" && go build -o "$work/custody-after" ./cmd/custody)
export XDG_CONFIG_HOME="$work/config"
cd "$root"
echo "before: $(git rev-parse --short "$before"), after: $(git rev-parse --short HEAD)$(git status --porcelain -- cmd internal | grep -q . && echo +uncommitted), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
go run ./bench/server "$@" before="$work/custody-before" after="$work/custody-after"
