#!/bin/sh
# bench/index/run.sh — evidence lookups on a 1,000,000-bundle index, SQLite
# and PostgreSQL, against bare prepared SQL and a 1,000-bundle index.
#
# Fills (or reuses) one index per backend: first through Store.Put (8
# concurrent callers) for PUT_LIMIT, to measure the fill rate the API allows,
# then the rest of the corpus with the benchmark's bulk loader (bare SQL /
# COPY into the store's own tables), then measures. The indexes are kept in
# $BENCH_INDEX_DIR between runs; a second run only measures. Rewrites the
# results section of bench/index/README.md (everything below the marker).
#
# Environment:
#   N                  bundles (default 1000000)
#   PUT_LIMIT          how long to fill through Put before bulk loading (default 5m)
#   BENCH_INDEX_DIR    kept databases (default ${TMPDIR:-/tmp}/custody-bench-index)
#   BENCH_INDEX_PG     PostgreSQL cluster directory for scripts/postgres
#                      (default $BENCH_INDEX_DIR/pg); or set
#   CUSTODY_BENCH_POSTGRES  a DSN to use instead of starting a cluster
#   BACKENDS           "sqlite postgres" (default) or one of them
set -eu

n=${N:-1000000}
put_limit=${PUT_LIMIT:-5m}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${BENCH_INDEX_DIR:-${TMPDIR:-/tmp}/custody-bench-index}
backends=${BACKENDS:-sqlite postgres}
mkdir -p "$dir"

echo "building bench/index/cmd"
(cd "$root" && go build -o "$dir/idxbench" ./bench/index/cmd)

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for b in $backends; do
	case $b in
	sqlite)
		"$dir/idxbench" -backend sqlite -db "$dir/index.db" -n "$n" -reuse \
			-fill-limit "$put_limit" -bulk -fill-log "$dir/sqlite-fill.log" -md "$dir/sqlite.md" 2>&1 | tee "$dir/sqlite.log"
		;;
	postgres)
		dsn=${CUSTODY_BENCH_POSTGRES:-$("$root/scripts/postgres" "${BENCH_INDEX_PG:-$dir/pg}")}
		"$dir/idxbench" -backend postgres -dsn "$dsn" -n "$n" -reuse \
			-fill-limit "$put_limit" -bulk -fill-log "$dir/postgres-fill.log" -md "$dir/postgres.md" 2>&1 | tee "$dir/postgres.log"
		;;
	*)
		echo "unknown backend $b" >&2
		exit 2
		;;
	esac
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

readme="$root/bench/index/README.md"
marker='<!-- results: everything below is written by run.sh -->'
tmp=$(mktemp)
if [ -f "$readme" ] && grep -qF "$marker" "$readme"; then
	sed "/^$marker\$/q" "$readme" >"$tmp"
else
	echo "$marker" >"$tmp"
fi
{
	echo
	echo "## Results"
	echo
	echo "Run started $started with \`N=$n PUT_LIMIT=$put_limit bench/index/run.sh\`."
	echo
	echo "| | |"
	echo "| --- | --- |"
	echo "| machine | $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(df -T "$dir" | awk 'NR==2 {print $2}') on $(df "$dir" | awk 'NR==2 {print $1}') |"
	echo "| sharing | the 2 cores are shared with other engineers' builds, tests and fuzzers; load average (1, 5, 15 min) $load_before before, $load_after after |"
	echo "| software | $(go version | cut -d' ' -f3-), $(uname -sr) |"
	echo
	for b in $backends; do
		cat "$dir/$b.md"
	done
} >>"$tmp"
mv "$tmp" "$readme"
echo "wrote $readme"
