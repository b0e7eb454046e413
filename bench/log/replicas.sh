#!/usr/bin/env bash
# bench/log/replicas.sh — appends/s and time to inclusion of custody serve
# replicas (log in MariaDB through Tessera's MySQL driver, state in
# PostgreSQL) with 1, 2 and 3 replicas, against one custody serve on the
# embedded POSIX default, in the same run; then the failover gap when one
# of three replicas is killed (SIGKILL) under load. Writes
# bench/log/replicas.jsonl and the results section of bench/log/replicas.md.
#
#   bench/log/replicas.sh                    # ~3 min
#   CLIENTS=128 DURATION=20s bench/log/replicas.sh
#
# Starts its own PostgreSQL (scripts/postgres) and MariaDB (scripts/mariadb)
# in a temporary directory unless CUSTODY_TEST_POSTGRES and
# CUSTODY_TEST_MARIADB name running ones (each point gets a database of its
# own). Per-append cost: CPU seconds of the custody processes and of the
# database servers, and statements sent to each database, divided by the
# appends acknowledged (from /proc and the servers' own counters).
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
out=bench/log/replicas.jsonl
tmp=$(mktemp -d "${TMPDIR:-/tmp}/custody-replicas.XXXXXX")
chmod 755 "$tmp"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	[ -f "$tmp/mariadb/mariadb.pid" ] && kill "$(cat "$tmp/mariadb/mariadb.pid")" 2>/dev/null || true
	if [ -f "$tmp/pg/data/postmaster.pid" ]; then kill -INT "$(head -n 1 "$tmp/pg/data/postmaster.pid")" 2>/dev/null || true; fi
	sleep 1
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/custody" ./cmd/custody
go build -o "$tmp/loadgen" ./bench/log/loadgen
PG=${CUSTODY_TEST_POSTGRES:-$(CUSTODY_PG_PORT=$((20000 + RANDOM % 30000)) scripts/postgres "$tmp/pg")}
MY=${CUSTODY_TEST_MARIADB:-$(CUSTODY_MARIADB_PORT=$((20000 + RANDOM % 30000)) scripts/mariadb "$tmp/mariadb")}
pghostport=$(sed -E 's|^postgres://[^@]*@([^/]*)/.*|\1|' <<<"$PG")
myhostport=$(sed -E 's|^mysql://[^@]*@([^/]*)/.*|\1|' <<<"$MY")
mycred=$(sed -E 's|^mysql://([^@]*)@.*|\1|' <<<"$MY")
psqlc() { psql -X -q -h "${pghostport%:*}" -p "${pghostport#*:}" -U postgres -d postgres -tAc "$1"; }
myc() { mariadb --no-defaults -h "${myhostport%:*}" -P "${myhostport#*:}" -u "${mycred%:*}" -p"${mycred#*:}" -N -e "$1"; }

export CUSTODY_PASSWORD=bench CUSTODY_SERVER_PASSWORD=bench
mkdir -p "$tmp/keys"
for k in log tsa audit builder; do "$tmp/custody" key generate --out "$tmp/keys/$k" >/dev/null 2>&1; done
keyflags=(--log-key "$tmp/keys/log.key" --tsa-key "$tmp/keys/tsa.key" --audit-key "$tmp/keys/audit.key" --builder-key "builder=$tmp/keys/builder.key")

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitup() { for _ in $(seq 600); do curl -fs "$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server $1 did not start" >&2; exit 1; }
cpu_of() { # CPU seconds (user+sys) of the processes $@
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "scale=3; $t / $(getconf CLK_TCK)" | bc
}
db_pids() { pgrep -x mariadbd; pgrep -x postgres; }
my_questions() { myc "SHOW GLOBAL STATUS LIKE 'Questions'" | awk '{print $2}'; }
pg_xacts() { psqlc "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database"; }

# point LABEL N: N replicas on fresh databases (N=0: POSIX default), one loadgen run.
point() {
	local label=$1 n=$2 urls=() spids=() tok db my
	if [ "$n" = 0 ]; then
		local p; p=$(port)
		"$tmp/custody" serve --data "$tmp/$label" --listen "127.0.0.1:$p" >"$tmp/$label.log" 2>&1 &
		spids+=($!); pids+=($!); urls+=("http://127.0.0.1:$p")
		waitup "${urls[0]}"
		tok=$("$tmp/custody" token create --data "$tmp/$label" --role builder --name bench 2>/dev/null | tail -1)
	else
		db=custody_bench_${label//-/_}
		psqlc "DROP DATABASE IF EXISTS $db" >/dev/null; psqlc "CREATE DATABASE $db" >/dev/null
		myc "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
		local pgdsn="${PG%/*}/$db?sslmode=disable" mydsn="${MY%/*}/$db"
		for i in $(seq "$n"); do
			local p; p=$(port)
			"$tmp/custody" serve --data "$tmp/$label-$i" --listen "127.0.0.1:$p" --db "$pgdsn" --log "$mydsn" "${keyflags[@]}" \
				>"$tmp/$label-$i.log" 2>&1 &
			spids+=($!); pids+=($!); urls+=("http://127.0.0.1:$p")
		done
		for u in "${urls[@]}"; do waitup "$u"; done
		tok=$("$tmp/custody" token create --db "$pgdsn" --role builder --name bench 2>/dev/null | tail -1)
	fi
	local url; url=$(IFS=,; echo "${urls[*]}")
	local c0 d0 q0 x0
	c0=$(cpu_of "${spids[@]}"); d0=$(cpu_of $(db_pids)); q0=$(my_questions); x0=$(pg_xacts)
	"$tmp/loadgen" -url "$url" -token "$tok" -clients "$CLIENTS" -duration "$DURATION" -warmup "$WARMUP" -label "$label" >"$tmp/$label.json"
	local c1 d1 q1 x1
	c1=$(cpu_of "${spids[@]}"); d1=$(cpu_of $(db_pids)); q1=$(my_questions); x1=$(pg_xacts)
	python3 - "$tmp/$label.json" "$c0" "$c1" "$d0" "$d1" "$q0" "$q1" "$x0" "$x1" "$n" >>"$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c0, c1, d0, d1 = map(float, sys.argv[2:6])
q0, q1, x0, x1 = map(float, sys.argv[6:10])
# appends over warm-up + measured window, estimated from the measured rate
n = max(1.0, r["appends_per_s"] * (r["duration_s"] + r["warmup_s"]))
r["replicas"] = int(sys.argv[10])
r["custody_cpu_ms_per_append"] = round((c1 - c0) * 1000 / n, 2)
r["db_cpu_ms_per_append"] = round((d1 - d0) * 1000 / n, 2)
r["mysql_statements_per_append"] = round((q1 - q0) / n, 2) if r["replicas"] else 0
r["pg_transactions_per_append"] = round((x1 - x0) / n, 2)
print(json.dumps(r))
PY
	for p in "${spids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${spids[@]}"; do wait "$p" 2>/dev/null || true; done
}

# failover: three replicas under load, one killed (SIGKILL) after a third
# of the run and started again two seconds later.
failover() {
	local label=failover db=custody_bench_failover urls=() spids=() ports=() tok
	psqlc "DROP DATABASE IF EXISTS $db" >/dev/null; psqlc "CREATE DATABASE $db" >/dev/null
	myc "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
	local pgdsn="${PG%/*}/$db?sslmode=disable" mydsn="${MY%/*}/$db"
	for i in 1 2 3; do
		local p; p=$(port); ports+=("$p")
		"$tmp/custody" serve --data "$tmp/$label-$i" --listen "127.0.0.1:$p" --db "$pgdsn" --log "$mydsn" "${keyflags[@]}" >>"$tmp/$label-$i.log" 2>&1 &
		spids+=($!); pids+=($!); urls+=("http://127.0.0.1:$p")
	done
	for u in "${urls[@]}"; do waitup "$u"; done
	tok=$("$tmp/custody" token create --db "$pgdsn" --role builder --name bench 2>/dev/null | tail -1)
	local url; url=$(IFS=,; echo "${urls[*]}")
	"$tmp/loadgen" -url "$url" -token "$tok" -clients "$CLIENTS" -duration 15s -warmup 2s -label failover >"$tmp/failover.json" &
	local lg=$!
	sleep 7
	kill -9 "${spids[0]}"
	sleep 2
	"$tmp/custody" serve --data "$tmp/$label-1" --listen "127.0.0.1:${ports[0]}" --db "$pgdsn" --log "$mydsn" "${keyflags[@]}" >>"$tmp/$label-1.log" 2>&1 &
	spids[0]=$!; pids+=($!)
	wait "$lg"
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["replicas"]=3; print(json.dumps(r))' "$tmp/failover.json" >>"$out"
	for p in "${spids[@]}"; do kill "$p" 2>/dev/null || true; done
}

: >"$out"
point posix-1 0
point replicas-1 1
point replicas-2 2
point replicas-3 3
failover
python3 bench/log/replicas_report.py "$out" bench/log/replicas.md "$(nproc)" "$(uptime | sed 's/.*load average: //')"
cat bench/log/replicas.md | sed -n '/<!-- results -->/,/<!-- \/results -->/p'
