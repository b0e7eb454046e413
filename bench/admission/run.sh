#!/bin/sh
# Load-test custody admission with hey on loopback, against a real custody
# serve holding the evidence. In the same run, as the baseline, hey asks the
# same webhook process for GET /healthz at the same rate (TLS, HTTP server,
# no decision), so the ratio webhook/healthz is what a decision adds.
#
#   warm: POST /validate of one Pod whose digest passes policy, the decision
#         cached; RATE requests/s for DURATION (hey -q is per worker).
#   cold: a second webhook with --cache-ttl 1ns (nothing cached): every
#         request fetches the evidence from custody serve, verifies it and
#         evaluates the policy. -c 1 so that no two requests share a fetch;
#         then -c 8 at a fixed rate, where concurrent identical misses may
#         share one fetch (the webhook deduplicates them).
#
# Every decision the webhooks compute is recorded as a VSA signed by the
# server's signing service (a deployer token), asynchronously: the cold rows
# write one per request, the warm rows none (cached). The VSA write counts
# from each webhook's /metrics close the output.
#
# Maximum-size reviews (MAX=0 leaves them out): a Pod of 64 containers, one
# per distinct digest (the default --max-images), every digest built by the
# same signed build; warm (64 cache hits) against the 1-image warm row, and
# cold (64 evaluations, --concurrency at a time, within one deadline)
# against the 1-image cold row; and a 2.4 MB review of 20,000 distinct
# digests, over the cap, which is denied naming it.
#
# The webhooks trust the builder key and the server's trusted root (custody
# trust export: its log and timestamp authority), and the policy requires a
# log inclusion and a verified timestamp, so a cold decision checks both.
#
# Usage: bench/admission/run.sh [RATE] [DURATION]   (default 1000 10s)
#        COLD=0 bench/admission/run.sh …   warm rows only (a short quiet window)
#        REV=COMMIT bench/admission/run.sh …   custody as of COMMIT (git archive),
#            this script otherwise: run before/after builds back to back
#        ADMISSION_ENV='GOGC=400 GODEBUG=gctrace=1' bench/admission/run.sh …
#            environment of the webhook processes only (gctrace: GC cycles
#            and pauses are summarised at the end)
# Needs hey (apt-get install hey), openssl, git. Writes results.txt here and
# prints a Markdown table for README.md.
set -eu

rate=${1:-1000}
duration=${2:-10s}
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/bench/admission"
work=$(mktemp -d "${TMPDIR:-/tmp}/custody-admission-bench.XXXXXX")
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

command -v hey >/dev/null || { echo "hey not found: apt-get install hey" >&2; exit 2; }
bin="$work/custody"
src=$root
build=$(git -C "$root" rev-parse --short HEAD)
if [ -n "${REV:-}" ]; then
	src="$work/src" && mkdir -p "$src"
	git -C "$root" archive "$REV" | tar -x -C "$src"
	build=$(git -C "$root" rev-parse --short "$REV")
elif [ -n "$(git -C "$root" status --porcelain -- cmd internal policy verify attest signer go.mod)" ]; then
	build="$build+uncommitted"
fi
(cd "$src" && go build -o "$bin" ./cmd/custody)
export CUSTODY_PASSWORD=bench XDG_CONFIG_HOME="$work/config" HOME="$work/home"
mkdir -p "$work/home"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() { # URL
	i=0
	until curl -ksf -o /dev/null "$1/healthz"; do
		i=$((i+1)); [ $i -lt 300 ] || { echo "$1 did not come up" >&2; exit 1; }
		sleep 0.1
	done
}

# custody serve with one image's provenance signed by its builder key
sp=$(port)
server="http://127.0.0.1:$sp"
"$bin" serve --data "$work/data" --listen "127.0.0.1:$sp" >"$work/serve.log" 2>&1 &
pids="$pids $!"
waitfor "$server"
builder_tok=$("$bin" token create --role builder --data "$work/data" 2>/dev/null | tail -1)
deployer_tok=$("$bin" token create --role deployer --data "$work/data" 2>/dev/null | tail -1)
"$bin" key public --server "$server" > "$work/builder.pub"
"$bin" trust export --server "$server" --out "$work/root.json" >/dev/null
maximages=64
digests=""
for i in $(seq $maximages); do digests="$digests sha256:$(head -c 64 /dev/urandom | sha256sum | cut -c1-64)"; done
digest=${digests# }; digest=${digest%% *} # the one the 1-image rows use
subjects="" n=0
for d in $digests; do n=$((n+1)); [ $n = 1 ] && name=app || name=app$n; subjects="$subjects --subject ghcr.io/bench/$name@$d"; done
mkdir -p "$work/repo" && cd "$work/repo"
git init -q -b main && echo 'echo pushed' > push.sh && git add push.sh
git -c user.name=bench -c user.email=bench@example.com commit -q -m init
CUSTODY_TOKEN=$builder_tok "$bin" build --server "$server" $subjects --bundle "$work/prov.json" -- sh push.sh >/dev/null
cd "$work"

keyid=$("$bin" policy key-id builder.pub | cut -c1-64)
mkdir policies
cat > policies/prod.yaml <<YAML
apiVersion: custody.dev/policy/v1
environment: prod
trustedBuilders: [https://custody.dev/builders/local@v1]
signers: [{keyId: $keyid}]
maxAge: 30d
requireLog: true
requireTimestamp: true
YAML
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout key.pem -out cert.pem 2>/dev/null

start_webhook() { # PORT EXTRA-ARGS...
	p=$1; shift
	env CUSTODY_TOKEN=$deployer_tok ${ADMISSION_ENV:-} "$bin" admission --listen "127.0.0.1:$p" --tls-cert cert.pem --tls-key key.pem \
		--server "$server" --policies policies --key builder.pub --trusted-root root.json \
		--namespace-env '*=prod' "$@" >>"$work/admission.log" 2>&1 &
	pids="$pids $!"
	waitfor "https://127.0.0.1:$p"
}
wp=$(port); start_webhook "$wp"
cp=$(port); start_webhook "$cp" --cache-ttl 1ns --deny-ttl 1ns

cat > review.json <<JSON
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"bench","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"shop","operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app"},"spec":{"containers":[{"name":"app","image":"ghcr.io/bench/app@$digest"},{"name":"sidecar","image":"ghcr.io/bench/app:v1@$digest"}]}}}}
JSON
# review-max.json: one container per digest; review-over.json: 20,000
# distinct digests (none built), over the cap
python3 - "$digests" > review-max.json <<'PY'
import json, sys
cs = [{"name": "c%d" % i, "image": "ghcr.io/bench/app@" + d} for i, d in enumerate(sys.argv[1].split())]
print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "bench-max",
    "kind": {"group": "", "version": "v1", "kind": "Pod"}, "resource": {"group": "", "version": "v1", "resource": "pods"},
    "namespace": "shop", "operation": "CREATE", "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}, "spec": {"containers": cs}}}}))
PY
sed 's/"bench-max"/"bench-over"/' review-max.json | python3 -c '
import json, sys
r = json.load(sys.stdin)
r["request"]["object"]["spec"]["containers"] = [{"name": "c%d" % i, "image": "ghcr.io/bench/app@sha256:%064x" % (i + 1)} for i in range(20000)]
print(json.dumps(r))' > review-over.json
check() { # URL REVIEW PATTERN: three tries (a cold review at the cap may meet its deadline on a loaded machine)
	for _ in 1 2 3; do curl -ks -H 'Content-Type: application/json' --data-binary @"$2" "$1/validate" | grep -q "$3" && return; done
	{
		echo "$2 is not answered $3 by $1:" >&2
		curl -ks --data-binary @"$2" "$1/validate" | head -c 2000 >&2; tail -20 admission.log >&2; exit 1; }
}
for u in "https://127.0.0.1:$wp" "https://127.0.0.1:$cp"; do
	check "$u" review.json '"allowed":true'
done
# (the cold webhook is not asked: on a loaded machine its 64 evaluations may
# not all end within the deadline, and it caches none of them)
[ "${MAX:-1}" = 0 ] || check "https://127.0.0.1:$wp" review-max.json '"allowed":true'
[ "${MAX:-1}" = 0 ] || check "https://127.0.0.1:$wp" review-over.json 'more than the 64 custody admission decides in one request'


# run NAME HEY-ARGS...: prints "NAME p50 p99 req/s errors denied", denied
# being the denials the webhooks logged during the row
run() {
	name=$1; shift
	before=$(grep -c 'admission denied' "$work/admission.log" || true)
	hey "$@" > "$work/$name.hey" 2>&1 || true
	denied=$(( $(grep -c 'admission denied' "$work/admission.log" || true) - before ))
	awk -v n="$name" -v denied="$denied" '
		/Requests\/sec:/ {rps=$2}
		/ 50%+ in / {p50=$3*1000}
		/ 99%+ in / {p99=$3*1000}
		/^\s*\[[0-9]+\]/ {code=$1; gsub(/[\[\]]/,"",code); if (code != "200") bad += $2}
		/Error distribution/ {err=1}
		err && /^\s*\[[0-9]+\]\s/ {errs += $1}
		END {printf "%-20s p50 %7.2f ms  p99 %7.2f ms  %8.0f req/s  non-200 %d  denied %d\n", n, p50, p99, rps, bad+0, denied}' "$work/$name.hey"
}
workers=20
q=$((rate / workers))
post="-m POST -T application/json -D $work/review.json"
postmax="-m POST -T application/json -D $work/review-max.json"
postover="-m POST -T application/json -D $work/review-over.json"
{
echo "custody admission on $(nproc) CPU(s), $(uname -srm), load average $(cut -d' ' -f1-3 /proc/loadavg) at start, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "rate $rate req/s ($workers workers × $q), $duration each, build $build"
run healthz-warm -z "$duration" -c $workers -q $q "https://127.0.0.1:$wp/healthz"
run validate-warm -z "$duration" -c $workers -q $q $post "https://127.0.0.1:$wp/validate"
if [ "${MAX:-1}" != 0 ]; then
run validate-warm-max -z "$duration" -c $workers -q $q $postmax "https://127.0.0.1:$wp/validate"
run validate-over-cap -n 100 -c 1 $postover "https://127.0.0.1:$wp/validate"
fi
if [ "${COLD:-1}" != 0 ]; then
run healthz-cold-c1 -n 300 -c 1 "https://127.0.0.1:$cp/healthz"
run validate-cold-c1 -n 300 -c 1 $post "https://127.0.0.1:$cp/validate"
run validate-cold-c8 -n 1000 -c 8 -q 25 $post "https://127.0.0.1:$cp/validate"
[ "${MAX:-1}" = 0 ] || run validate-cold-max-c1 -n 50 -c 1 $postmax "https://127.0.0.1:$cp/validate"
fi
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
for r in validate-cold-c1 validate-cold-max-c1 validate-over-cap; do
	[ -f "$work/$r.hey" ] && grep -E '^\s+(50|90|99)%+ in |Slowest' "$work/$r.hey" | tr -s ' ' | tr '\n' ' ' | sed "s/^/$r latency:/; s/\$/\n/"
done
sleep 2 # let the VSA queue drain
for w in "warm $wp" "cold $cp"; do
	set -- $w
	curl -ks "https://127.0.0.1:$2/metrics" | grep -E '^custody_admission_((vsa_writes|cache_lookups|quarantine_sync_errors|evidence_errors)_total|quarantine_sync_age_seconds|decisions_total\{reason="(too_many_images|undecided)")' | sed "s/^/$1 webhook: /"
done
} | tee "$here/results.txt"
grep -c 'admission denied' "$work/admission.log" | sed 's/^/denials logged during the run: /'
if grep -q '^gc [0-9]' "$work/admission.log"; then # gctrace: "gc N @Ts P%: A+B+C ms clock, …" (A, C: the stop-the-world phases)
	grep '^gc [0-9]' "$work/admission.log" | awk '{split($5, p, "+"); n++; if (p[1] > m) m = p[1]; if (p[3] > m) m = p[3];
		if (p[1] > 1 || p[3] > 1) long++} END {printf "GC cycles in both webhooks (whole run): %d, longest stop-the-world phase %.3f ms, cycles with a phase over 1 ms: %d\n", n, m, long+0}'
fi
grep 'decision not recorded' "$work/admission.log" | sed -n 's/.*err=//p' | sort | uniq -c | sort -rn | head -5 | sed 's/^/VSA write failures: /'
grep 'admission denied' "$work/admission.log" | sed -n 's/.*first=//p' | sed 's/sha256:[0-9a-f]*/sha256:…/g' | sort | uniq -c | sort -rn | head -3 | sed 's/^/denials: /'
