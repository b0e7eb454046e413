#!/bin/sh
# Auth cost per request before and after the token lifecycle (hashed token
# store read again on change, selector lookup, batched last use), in the
# same run: the same benchmark file is run against BEFORE (default: the
# commit before the token lifecycle) and the working tree, interleaved
# COUNT times, then compared with benchstat (go install
# golang.org/x/perf/cmd/benchstat@latest).
set -eu
cd "$(git rev-parse --show-toplevel)"
BEFORE=${BEFORE:-64266ad^}
COUNT=${COUNT:-8}
BENCHTIME=${BENCHTIME:-20000x}
out=${OUT:-bench/auth}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/before" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/before" "$BEFORE"
mkdir -p "$tmp/before/bench/auth"
cp bench/auth/auth_test.go "$tmp/before/bench/auth/"
(cd "$tmp/before" && go test -c -o "$tmp/before.test" ./bench/auth)
go test -c -o "$tmp/after.test" ./bench/auth
: > "$out/before.txt"
: > "$out/after.txt"
uptime
for i in $(seq "$COUNT"); do
	"$tmp/before.test" -test.run '^$' -test.bench . -test.benchtime "$BENCHTIME" 2>/dev/null | grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >> "$out/before.txt"
	"$tmp/after.test" -test.run '^$' -test.bench . -test.benchtime "$BENCHTIME" 2>/dev/null | grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >> "$out/after.txt"
done
uptime
"$(go env GOPATH)/bin/benchstat" "$out/before.txt" "$out/after.txt"
