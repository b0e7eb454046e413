#!/usr/bin/env bash
# bench/edge: the lean verifier (cmd/custody-verify built as docs/edge.md
# says: static (CGO_ENABLED=0), -tags custody_norego,grpcnotrace,nethttpomithttp2,
# stripped)
# against the full custody binary and stock cosign v3 on the same real SLSA
# generator bundle from testdata/corpus, whole process, in the same
# hyperfine run. Goals (issue 17): binary <= 15 MB, CPU (user+sys) of
# startup + verify <= 0.3x cosign's, peak RSS <= 20 MiB (/usr/bin/time -v).
# Also the lean verifier with the runtime's default collector (GOGC=100,
# against internal/gcpolicy's), the startup of the full binary (custody
# version), and, at BEFORE=<commit> when given, the full binary (lazy
# initialisation) and the lean verifier built as docs/edge.md said then.
# Needs hyperfine and jq; cosign comes from scripts/tool cosign-v3.
set -euo pipefail
cd "$(dirname "$0")/../.."
for c in hyperfine jq /usr/bin/time; do command -v "$c" >/dev/null || { echo "bench/edge: needs $c" >&2; exit 2; }; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
RUNS=${RUNS:-30}
results=${RESULTS:-bench/edge/results.md}
go build -o "$work/custody" ./cmd/custody
CGO_ENABLED=0 go build -tags custody_norego,grpcnotrace,nethttpomithttp2 -trimpath -ldflags='-s -w' -o "$work/custody-verify" ./cmd/custody-verify
go build -o "$work/custody-verify-default" ./cmd/custody-verify
go build -trimpath -ldflags='-s -w' -o "$work/custody-stripped" ./cmd/custody
if [ -n "${BEFORE:-}" ]; then
	git worktree add -q --detach "$work/before" "$BEFORE"
	(cd "$work/before" && go build -o "$work/custody-before" ./cmd/custody)
	# the lean verifier as docs/edge.md built it before static builds
	(cd "$work/before" && CGO_ENABLED=1 go build -tags custody_norego,grpcnotrace,nethttpomithttp2 -trimpath -ldflags='-s -w' -o "$work/custody-verify-before" ./cmd/custody-verify) || echo "bench/edge: no lean verifier at $BEFORE" >&2
	git worktree remove --force "$work/before"
fi
cosign=$(scripts/tool cosign-v3)
corpus=$PWD/testdata/corpus
B=$corpus/delegator-v1.10.0-push-v13.0.30.sigstore.json
A=$corpus/delegator-v1.10.0-push-v13.0.30.bin
ID=https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/v1.10.0
ISS=https://token.actions.githubusercontent.com
flags="--bundle $B --trusted-root $corpus/public-good-trusted_root.json --certificate-identity $ID --certificate-oidc-issuer $ISS"
lean="$work/custody-verify $flags $A"
full="$work/custody verify $flags $A"
cos="$cosign verify-blob-attestation --bundle $B --new-bundle-format --trusted-root $corpus/public-good-trusted_root.json --certificate-identity $ID --certificate-oidc-issuer $ISS --type slsaprovenance $A"
for c in "$lean" "$full" "$cos"; do $c >/dev/null 2>&1 || { echo "bench/edge: does not verify: $c" >&2; exit 1; }; done

# custody-verify with the runtime's default collector (GOGC=100 overrides
# internal/gcpolicy), through env: the exec of env is counted too.
cmds=(-n custody-verify "$lean" -n "custody verify" "$full" -n cosign "$cos" -n "custody version" "$work/custody version"
	-n "custody-verify GOGC=100" "env GOGC=100 $lean")
[ -n "${BEFORE:-}" ] && cmds+=(-n "custody version @$BEFORE" "$work/custody-before version" -n "custody verify @$BEFORE" "$work/custody-before verify $flags $A")
[ -x "$work/custody-verify-before" ] && cmds+=(-n "custody-verify @$BEFORE" "$work/custody-verify-before $flags $A")
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/h.json" --export-markdown "$work/h.md" "${cmds[@]}"

# peak RSS: the median of 5 runs each
rss() { for i in 1 2 3 4 5; do /usr/bin/time -v "$@" 2>&1 >/dev/null | awk '/Maximum resident/ {print $6}'; done | sort -n | sed -n 3p; }
rss_lean=$(rss $lean); rss_full=$(rss $full); rss_cos=$(rss $cos)
cpu() { jq -r --arg n "$1" '.results[] | select(.command == $n) | (.user + .system) * 1000 | . * 10 | round / 10' "$work/h.json"; }
c_lean=$(cpu custody-verify); c_full=$(cpu "custody verify"); c_cos=$(cpu cosign); c_gc=$(cpu "custody-verify GOGC=100")
size() { stat -c %s "$1"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
echo "# bench/edge results"
echo
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(go version | cut -d' ' -f3-); cosign $("$cosign" version 2>/dev/null | awk '/GitVersion/ {print $2}')"
echo
echo "Bundle: testdata/corpus/$(basename "$B") (SLSA GitHub generator, keyless, Rekor v1 entry)."
echo
echo "| | custody-verify (lean) | custody verify (full) | cosign v3 | goal |"
echo "| --- | --- | --- | --- | --- |"
echo "| binary | $(mb "$(size "$work/custody-verify")") stripped ($(mb "$(size "$work/custody-verify-default")") default build, Rego included) | $(mb "$(size "$work/custody")") ($(mb "$(size "$work/custody-stripped")") stripped) | $(mb "$(size "$cosign")") | lean <= 15 MB |"
echo "| CPU user+sys, mean | ${c_lean} ms ($(ratio "$c_lean" "$c_cos")x cosign) | ${c_full} ms ($(ratio "$c_full" "$c_cos")x) | ${c_cos} ms | lean <= 0.3x cosign |"
echo "| CPU with GOGC=100 (the runtime's default collector), mean | ${c_gc} ms ($(ratio "$c_gc" "$c_cos")x cosign) | | | |"
echo "| peak RSS, median of 5 | $((rss_lean / 1024)) MiB | $((rss_full / 1024)) MiB | $((rss_cos / 1024)) MiB | lean <= 20 MiB |"
if [ -n "${BEFORE:-}" ]; then
echo
echo "Now and at $BEFORE (CPU user+sys, mean, same run; the lean verifier at $BEFORE built as docs/edge.md said then, dynamically linked):"
echo
echo "| | now | at $BEFORE |"
echo "| --- | --- | --- |"
[ -x "$work/custody-verify-before" ] && echo "| custody-verify (lean) | $c_lean ms ($(ratio "$c_lean" "$c_cos")x cosign) | $(cpu "custody-verify @$BEFORE") ms ($(ratio "$(cpu "custody-verify @$BEFORE")" "$c_cos")x) |"
echo "| custody verify | $(cpu "custody verify") ms ($(ratio "$(cpu "custody verify")" "$c_cos")x cosign) | $(cpu "custody verify @$BEFORE") ms ($(ratio "$(cpu "custody verify @$BEFORE")" "$c_cos")x) |"
echo "| custody version | $(cpu "custody version") ms | $(cpu "custody version @$BEFORE") ms |"
fi
echo
echo "hyperfine (wall time; -N, $RUNS runs, 3 warmup):"
echo
cat "$work/h.md"
} > "$results"
cat "$results"
