#!/bin/sh
# bench/incident/run.sh — `custody incident open --server` over an index of
# N bundles of which AFFECTED were signed by the compromised key after T
# (and SPARED before T), against the bare index search for the same key.
# Fills (or reuses) a custody serve data directory in $BENCH_INCIDENT_DIR,
# then measures; rewrites bench/incident/results.md.
#
# Environment:
#   N                   bundles (default 1000000)
#   AFFECTED            bundles signed by the key after T (default 10000)
#   SPARED              bundles signed by the key before T (default 1000)
#   RUNS                incident open runs (default 3)
#   BENCH_INCIDENT_DIR  kept data directory (default ${TMPDIR:-/tmp}/custody-bench-incident,
#                       -pg appended with DB)
#   DB                  PostgreSQL DSN of an empty database for the index (filled on the
#                       first run; e.g. createdb on the cluster of scripts/postgres); the
#                       results then go to results-postgres.md
set -eu

n=${N:-1000000}
affected=${AFFECTED:-10000}
spared=${SPARED:-1000}
runs=${RUNS:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
db=${DB:-}
suffix=; out=results.md
if [ -n "$db" ]; then suffix=-pg; out=results-postgres.md; fi
dir=${BENCH_INCIDENT_DIR:-${TMPDIR:-/tmp}/custody-bench-incident$suffix}
bin=$dir.bin
mkdir -p "$bin"

echo "building custody and bench/incident/cmd"
(cd "$root" && go build -o "$bin/custody" ./cmd/custody && go build -o "$bin/incidentbench" ./bench/incident/cmd)

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
"$bin/incidentbench" -dir "$dir" -n "$n" -affected "$affected" -spared "$spared" -runs "$runs" \
	-custody "$bin/custody" -md "$bin/table.md" -db "$db" 2>&1 | grep -v '^I[0-9]' | tee "$bin/run.log"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "# bench/incident results"
	echo
	echo "Run started $started with \`${db:+DB=… }N=$n AFFECTED=$affected SPARED=$spared RUNS=$runs bench/incident/run.sh\`."
	echo
	echo "| | |"
	echo "| --- | --- |"
	echo "| machine | $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM |"
	echo "| sharing | the cores are shared with other engineers' builds and tests; load average (1, 5, 15 min) $load_before before, $load_after after |"
	echo "| software | $(go version | cut -d' ' -f3-), $(uname -sr) |"
	echo
	cat "$bin/table.md"
} >"$root/bench/incident/$out"
echo "wrote $root/bench/incident/$out"
