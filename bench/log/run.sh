#!/usr/bin/env bash
# bench/log: transparency-log append throughput at saturation, custody serve
# vs the Rekor v2 server (rekor-tiles, POSIX backend), same load generator,
# same machine, same run. Results go to bench/log/results.jsonl and the
# results section of bench/log/README.md.
#
# Environment:
#   CLIENTS   client counts (default "64 256 1024 2048")
#   DURATION  measured seconds per point (default 15s)
#   WARMUP    unmeasured load before each point (default 3s; 12s for
#             Rekor at its default 10 s checkpoint interval)
#   REKOR     0 skips Rekor v2
#   REKOR_VERSION  rekor-tiles module version (default v2.3.0)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CLIENTS=${CLIENTS:-"64 256 1024 2048"}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
REKOR=${REKOR:-1}
REKOR_VERSION=${REKOR_VERSION:-v2.3.0}

work=$(mktemp -d /tmp/bench-log.XXXXXX)
bin=$work/bin
mkdir -p "$bin"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

port() { # a free 127.0.0.1 port
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL: wait until it answers
	for _ in $(seq 100); do
		curl -fs -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	return 1
}

echo "building custody and loadgen" >&2
(cd "$root" && go build -o "$bin/custody" ./cmd/custody && go build -o "$bin/loadgen" ./bench/log/loadgen)

rekor_err=""
if [ "$REKOR" != 0 ]; then
	echo "building rekor-tiles $REKOR_VERSION (cmd/rekor-server/posix)" >&2
	if ! (cd "$work" && GOBIN="$bin" go install \
		"github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix@$REKOR_VERSION") >"$work/rekor-build.log" 2>&1; then
		rekor_err="rekor-tiles $REKOR_VERSION did not build: $(tail -1 "$work/rekor-build.log")"
		echo "$rekor_err" >&2
	fi
fi

results=$here/results.jsonl
: >"$results"

point() { # LABEL URL TOKEN CLIENTS WARMUP
	echo "  $1: $4 clients" >&2
	"$bin/loadgen" -label "$1" -url "$2" -token "$3" -clients "$4" -warmup "$5" -duration "$DURATION" | tee -a "$results" >&2
}

run_custody() { # LABEL EXTRA-SERVE-FLAGS...
	local label=$1; shift
	local data=$work/custody-$label p tok pid
	p=$(port)
	tok=$("$bin/custody" token create --role builder --data "$data" | tail -1)
	# serve logs one line per entry at info level: keep it off the terminal.
	"$bin/custody" serve --data "$data" --listen "127.0.0.1:$p" "$@" >"$work/$label.out" 2>"$work/$label.err" &
	pid=$!; pids+=("$pid")
	wait_http "http://127.0.0.1:$p/checkpoint"
	echo "custody serve ($label) on :$p" >&2
	for c in $CLIENTS; do point "$label" "http://127.0.0.1:$p" "$tok" "$c" "$WARMUP"; done
	kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_rekor() { # LABEL WARMUP EXTRA-FLAGS...
	local label=$1 warm=$2; shift 2
	local data=$work/rekor-$label hp gp mp pid
	mkdir -p "$data"
	hp=$(port); gp=$(port); mp=$(port)
	"$bin/posix" serve --storage-dir "$data" --signer-filepath "$work/rekor.pem" --hostname rekor-local \
		--http-port "$hp" --grpc-port "$gp" --http-metrics-port "$mp" "$@" >"$work/$label.out" 2>"$work/$label.err" &
	pid=$!; pids+=("$pid")
	wait_http "http://127.0.0.1:$hp/healthz"
	echo "rekor-tiles ($label) on :$hp" >&2
	for c in $CLIENTS; do point "$label" "http://127.0.0.1:$hp" "" "$c" "$warm"; done
	kill "$pid"; wait "$pid" 2>/dev/null || true
}

# custody at its defaults (max 256 write requests in flight, 503 beyond),
# then with the in-flight cap raised to Rekor's default pushback (4096).
run_custody custody-default
run_custody custody-inflight4096 --max-inflight 4096

if [ "$REKOR" != 0 ] && [ -z "$rekor_err" ]; then
	openssl genpkey -algorithm ed25519 -out "$work/rekor.pem" 2>/dev/null
	# Rekor v2 defaults: 10 s checkpoint interval, so warm up past one.
	run_rekor rekor-default 12s
	run_rekor rekor-cp1s "$WARMUP" --checkpoint-interval 1s
fi

# README results section.
{
	echo "Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(uname -sr), $(go version | cut -d' ' -f3)."
	echo "Load: loadgen on the same machine, ${DURATION} measured after warm-up per point, one fresh data directory per server configuration;"
	echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: expect noise)."
	[ -n "$rekor_err" ] && echo && echo "**Rekor v2 not measured:** $rekor_err"
	echo
	echo "| server | clients | appends/s | p50 ms | p90 ms | p99 ms | e2e p99 ms (with 503 retries) | non-2xx / errors |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	jq -r '"| \(.label) | \(.clients) | \(.appends_per_s|floor) | \(.p50_ms|floor) | \(.p90_ms|floor) | \(.p99_ms|floor) | \(.e2e_p99_ms|floor) | \(.errors|to_entries|map("\(.key): \(.value)")|join(", ")) |"' "$results"
} >"$work/section.md"
readme=$here/README.md
awk -v sec="$work/section.md" '
	/<!-- results -->/ { print; while ((getline l < sec) > 0) print l; skip = 1; next }
	/<!-- \/results -->/ { skip = 0 }
	!skip { print }' "$readme" >"$work/README.md"
cp "$work/README.md" "$readme"
cat "$work/section.md"
