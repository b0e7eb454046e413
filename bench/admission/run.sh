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
digest=sha256:$(head -c 64 /dev/urandom | sha256sum | cut -c1-64)
mkdir -p "$work/repo" && cd "$work/repo"
git init -q -b main && echo 'echo pushed' > push.sh && git add push.sh
git -c user.name=bench -c user.email=bench@example.com commit -q -m init
CUSTODY_TOKEN=$builder_tok "$bin" build --server "$server" --subject "ghcr.io/bench/app@$digest" --bundle "$work/prov.json" -- sh push.sh >/dev/null
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
for u in "https://127.0.0.1:$wp" "https://127.0.0.1:$cp"; do
	curl -ks -H 'Content-Type: application/json' --data-binary @review.json "$u/validate" | grep -q '"allowed":true' || {
		echo "the bench image is not allowed by $u:" >&2
		curl -ks --data-binary @review.json "$u/validate" >&2; cat admission.log >&2; exit 1; }
done

# run NAME HEY-ARGS...: prints "NAME p50 p99 req/s errors"
run() {
	name=$1; shift
	hey "$@" > "$work/$name.hey" 2>&1 || true
	awk -v n="$name" '
		/Requests\/sec:/ {rps=$2}
		/ 50%+ in / {p50=$3*1000}
		/ 99%+ in / {p99=$3*1000}
		/^\s*\[[0-9]+\]/ {code=$1; gsub(/[\[\]]/,"",code); if (code != "200") bad += $2}
		/Error distribution/ {err=1}
		err && /^\s*\[[0-9]+\]\s/ {errs += $1}
		END {printf "%-14s p50 %7.2f ms  p99 %7.2f ms  %8.0f req/s  non-200 %d\n", n, p50, p99, rps, bad+0}' "$work/$name.hey"
}
workers=20
q=$((rate / workers))
post="-m POST -T application/json -D $work/review.json"
{
echo "custody admission on $(nproc) CPU(s), $(uname -srm), load average $(cut -d' ' -f1-3 /proc/loadavg) at start, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "rate $rate req/s ($workers workers × $q), $duration each, build $build"
run healthz-warm -z "$duration" -c $workers -q $q "https://127.0.0.1:$wp/healthz"
run validate-warm -z "$duration" -c $workers -q $q $post "https://127.0.0.1:$wp/validate"
if [ "${COLD:-1}" != 0 ]; then
run healthz-cold-c1 -n 300 -c 1 "https://127.0.0.1:$cp/healthz"
run validate-cold-c1 -n 300 -c 1 $post "https://127.0.0.1:$cp/validate"
run validate-cold-c8 -n 1000 -c 8 -q 25 $post "https://127.0.0.1:$cp/validate"
fi
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
sleep 2 # let the VSA queue drain
for w in "warm $wp" "cold $cp"; do
	set -- $w
	curl -ks "https://127.0.0.1:$2/metrics" | grep -E '^custody_admission_((vsa_writes|cache_lookups|quarantine_sync_errors)_total|quarantine_sync_age_seconds)' | sed "s/^/$1 webhook: /"
done
} | tee "$here/results.txt"
grep -c 'admission denied' "$work/admission.log" | sed 's/^/denials logged during the run: /'
if grep -q '^gc [0-9]' "$work/admission.log"; then # gctrace: "gc N @Ts P%: A+B+C ms clock, …" (A, C: the stop-the-world phases)
	grep '^gc [0-9]' "$work/admission.log" | awk '{split($5, p, "+"); n++; if (p[1] > m) m = p[1]; if (p[3] > m) m = p[3];
		if (p[1] > 1 || p[3] > 1) long++} END {printf "GC cycles in both webhooks (whole run): %d, longest stop-the-world phase %.3f ms, cycles with a phase over 1 ms: %d\n", n, m, long+0}'
fi
grep 'decision not recorded' "$work/admission.log" | sed -n 's/.*err=//p' | sort | uniq -c | sort -rn | head -5 | sed 's/^/VSA write failures: /'
grep 'admission denied' "$work/admission.log" | sed -n 's/.*first=//p' | sed 's/sha256:[0-9a-f]*/sha256:…/g' | sort | uniq -c | sort -rn | head -3 | sed 's/^/denials: /'
