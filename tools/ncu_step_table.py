#!/usr/bin/env python3
"""The kernels of one replayed training step as a markdown table, from the output of
`ncu --metrics gpu__time_duration.sum --csv --print-units base bench_cuda --replay-step`
(tools/gpu_check.sh). bench_cuda prints how many operations a replay runs; the last that many
rows of Nsight Compute's table are the last replay's kernels.

    tools/ncu_step_table.py NCU_OUTPUT
"""
import csv
import re
import sys

MICROSECONDS = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}


def table(lines):
    counts = [int(m.group(1)) for m in (re.match(r"operations per replay: (\d+)", line) for line in lines) if m]
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None or not counts:
        out = ["    no kernel table in the profiler's output; its errors:"]
        out += ["    " + line[:200] for line in lines if "ERROR" in line or "rror" in line][:5]
        return out
    rows = [r for r in csv.DictReader(lines[start:]) if r.get("Metric Name") == "gpu__time_duration.sum"]
    last = rows[-counts[-1]:]
    out = ["| kernel | grid | block | µs |", "| --- | --- | --- | ---: |"]
    total = 0.0
    for r in last:
        name = r.get("Kernel Name") or r.get("Function Name") or "?"
        us = float(r["Metric Value"].replace(",", "")) * MICROSECONDS.get(r.get("Metric Unit", ""), float("nan"))
        total += us
        out.append(f"| {name[:70].replace('|', '/')} | {r.get('Grid Size', '')} | {r.get('Block Size', '')} | {us:.2f} |")
    out.append(f"| all {len(last)} kernels of the last replay | | | {total:.2f} |")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], errors="replace") as f:
        print("\n".join(table(f.read().splitlines())))
