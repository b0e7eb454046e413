#!/bin/sh
# Compare custody's digest.File throughput with sha256sum on one 1 GiB file
# of random data. Uses hyperfine when installed, else a loop of timed runs.
# Prints both mean times and the throughput ratio sha256sum_time / custody_time
# (>= 1 means custody is at least as fast; the goal is >= 0.9).
#
# Usage: bench/hash/run.sh [RUNS]   (default 10)
set -eu

runs=${1:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/custody-hash-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

file="$work/1GiB.bin"
bin="$work/custody-hash"
echo "building bench/hash/cmd"
(cd "$root" && go build -o "$bin" ./bench/hash/cmd)
echo "writing 1 GiB of random data to $file"
head -c 1073741824 /dev/urandom > "$file"

want=$(sha256sum "$file" | cut -d' ' -f1)
got=$("$bin" "$file" | cut -d' ' -f1)
if [ "$want" != "$got" ]; then
	echo "digest mismatch: sha256sum $want, custody $got" >&2
	exit 1
fi

if command -v hyperfine >/dev/null 2>&1; then
	hyperfine --warmup 2 --runs "$runs" --export-json "$work/h.json" \
		-n sha256sum "sha256sum $file" -n custody "$bin $file"
	python3 - "$work/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
s, c = r["sha256sum"]["mean"], r["custody"]["mean"]
mib = 1024.0
print(f"sha256sum: mean {s:.3f}s ({mib/s:.0f} MiB/s)  custody: mean {c:.3f}s ({mib/c:.0f} MiB/s)")
print(f"ratio (custody throughput / sha256sum throughput): {s/c:.2f}")
sc = r["sha256sum"]["user"] + r["sha256sum"]["system"]
cc = r["custody"]["user"] + r["custody"]["system"]
print(f"CPU time (user+sys): sha256sum {sc:.3f}s, custody {cc:.3f}s, ratio {sc/cc:.2f} (robust on a busy machine)")
PY
else
	# Fallback: best-of-N wall-clock times, measured with date +%s%N.
	best() {
		b=""
		i=0
		while [ "$i" -lt "$runs" ]; do
			t0=$(date +%s%N)
			"$@" >/dev/null
			t1=$(date +%s%N)
			d=$((t1 - t0))
			if [ -z "$b" ] || [ "$d" -lt "$b" ]; then b=$d; fi
			i=$((i + 1))
		done
		echo "$b"
	}
	sha256sum "$file" >/dev/null; "$bin" "$file" >/dev/null # warm the page cache
	s=$(best sha256sum "$file")
	c=$(best "$bin" "$file")
	awk -v s="$s" -v c="$c" 'BEGIN {
		printf "sha256sum: best %.3fs (%.0f MiB/s)  custody: best %.3fs (%.0f MiB/s)\n", s/1e9, 1024/(s/1e9), c/1e9, 1024/(c/1e9)
		printf "ratio (custody throughput / sha256sum throughput): %.2f\n", s/c
	}'
fi
