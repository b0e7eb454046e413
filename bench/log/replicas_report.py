#!/usr/bin/env python3
"""Writes the results section of bench/log/replicas.md from replicas.jsonl."""
import json, re, sys, datetime, platform

src, md, cores, load = sys.argv[1:5]
rows = [json.loads(l) for l in open(src) if l.strip()]
base = next((r for r in rows if r["label"] == "posix-1"), None)
lines = [
    f"Last run: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {cores} cores, Linux {platform.release()}; "
    f"load average at the end: {load} (a shared machine: the replicas, both databases and the load generator share the cores).",
    "",
    "| setup | replicas | clients | appends/s | × POSIX | p50 ms | p99 ms | custody CPU ms/append | database CPU ms/append | MySQL statements/append | PostgreSQL transactions/append | errors |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
]
for r in rows:
    if r["label"] == "failover":
        continue
    ratio = r["appends_per_s"] / base["appends_per_s"] if base and base["appends_per_s"] else 0
    errs = ", ".join(f"{k}: {v}" for k, v in sorted(r.get("errors", {}).items()))
    lines.append(
        f"| {r['label']} | {r['replicas'] or 1} | {r['clients']} | {r['appends_per_s']:.0f} | {ratio:.2f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
        f"{r.get('custody_cpu_ms_per_append', 0)} | {r.get('db_cpu_ms_per_append', 0)} | {r.get('mysql_statements_per_append', 0)} | "
        f"{r.get('pg_transactions_per_append', 0)} | {errs} |")
f = next((r for r in rows if r["label"] == "failover"), None)
if f:
    errs = ", ".join(f"{k}: {v}" for k, v in sorted(f.get("errors", {}).items()))
    lines += ["", f"Failover (3 replicas, {f['clients']} clients, one replica SIGKILLed 5 s into the measured 15 s and restarted 2 s later): "
              f"{f['appends_per_s']:.0f} appends/s over the window, p99 {f['p99_ms']:.0f} ms; "
              f"{f.get('gaps', 0)} clients saw a failed request; failover gap (failed request → next acknowledged append "
              f"through another replica) p50 {f.get('gap_p50_ms', 0):.0f} ms, max {f.get('gap_max_ms', 0):.0f} ms; errors: {errs or 'none'}."]
text = open(md).read()
section = "<!-- results -->\n" + "\n".join(lines) + "\n<!-- /results -->"
text = re.sub(r"<!-- results -->.*<!-- /results -->", lambda _: section, text, flags=re.S)
open(md, "w").write(text)
