#!/usr/bin/env python3
"""How much two probes of the same runs differ: the geometry at every layer and step, and the onsets.

    tools/compare_geometry.py OLD NEW

OLD and NEW are run directories, or folders holding run directories at the same relative paths
(runs/seeds and a re-probe of each of its runs by `grokscope probe RUN --out NEW/...`, say).
For each group of runs (the folder above each run: a condition of a sweep) and layer it prints
how many layer-steps the two compare, at how many of them the removed center structure's K
differs, at how many the capacity moved by more than 1%, and the largest move. Where both hold
an onsets.csv (`grokscope report ... --out OLD` and `--out NEW`), it then prints each lag
column's largest difference over each group's runs, in decades.
"""
import csv
import math
import os
import signal
import sys
from collections import defaultdict

MOVE = 0.01  # a capacity that moved by more than this fraction counts as moved
GEOMETRY_COLUMNS = ["step", "layer", "capacity", "k"]


def runs_under(root):
    """The run directories (those with a geometry.csv) under root, as paths relative to it."""
    found = []
    for here, dirs, files in os.walk(root):
        dirs.sort()
        if "geometry.csv" in files:
            found.append(os.path.relpath(here, root))
    return found


def read_rows(path, needed):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            sys.exit(f"compare_geometry: {path} has no column {', '.join(missing)}: is it a grokscope "
                     f"{os.path.basename(path)}?")
        return list(reader)


def relative_move(old, new):
    if math.isnan(old) and math.isnan(new):
        return 0.0
    if math.isnan(old) or math.isnan(new):
        return math.inf
    if old == new:
        return 0.0
    return abs(new - old) / abs(old) if old != 0 else math.inf


def compare_geometry(old_root, new_root):
    runs = runs_under(old_root)
    if not runs:
        sys.exit(f"compare_geometry: no geometry.csv under {old_root}: give a run directory or a folder of them")
    missing = [os.path.normpath(os.path.join(new_root, r, "geometry.csv")) for r in runs]
    missing = [path for path in missing if not os.path.exists(path)]
    if missing:
        sys.exit(f"compare_geometry: {missing[0]} is missing "
                 f"({len(missing)} of {len(runs)} runs of {old_root} have no counterpart under {new_root})")
    per_layer = defaultdict(lambda: {"steps": 0, "k": 0, "moved": 0, "largest": (0.0, "")})
    total = {"steps": 0, "k": 0, "moved": 0}
    for run in runs:
        old_path, new_path = (os.path.normpath(os.path.join(root, run, "geometry.csv")) for root in (old_root, new_root))
        new_rows = {(r["step"], r["layer"]): r for r in read_rows(new_path, GEOMETRY_COLUMNS)}
        group = os.path.dirname(run) or "."
        for row in read_rows(old_path, GEOMETRY_COLUMNS):
            other = new_rows.get((row["step"], row["layer"]))
            if other is None:
                sys.exit(f"compare_geometry: {new_path} has no row for step {row['step']}, layer {row['layer']}, "
                         f"which {old_path} has: were both probed at the same checkpoints?")
            entry = per_layer[(group, row["layer"])]
            move = relative_move(float(row["capacity"]), float(other["capacity"]))
            changed_k = row["k"] != other["k"]
            for counts in (entry, total):
                counts["steps"] += 1
                counts["k"] += changed_k
                counts["moved"] += move > MOVE
            if move > entry["largest"][0]:
                entry["largest"] = (move, f"{os.path.basename(run)}, step {row['step']}")
    print(f"geometry.csv: {len(runs)} runs, {total['steps']} layer-steps; K differs at {total['k']} "
          f"({100 * total['k'] / total['steps']:.1f}%); the capacity moved by more than {MOVE:.0%} at {total['moved']}")
    print(f"{'group':<16}{'layer':<12}{'steps':>6}{'K differs':>11}{'moved':>7}  largest capacity move")
    for (group, layer), e in sorted(per_layer.items()):
        move, where = e["largest"]
        largest = "none" if move == 0 else f"{100 * move:.3g}% ({where})"
        print(f"{group:<16}{layer:<12}{e['steps']:>6}{e['k']:>11}{e['moved']:>7}  {largest}")


def compare_onsets(old_root, new_root):
    paths = [os.path.join(root, "onsets.csv") for root in (old_root, new_root)]
    if not all(os.path.exists(p) for p in paths):
        return
    # Runs are named by their path; the two reports name the same run under different roots.
    def by_run(path, root):
        rows = {}
        for r in read_rows(path, ["run"]):
            rows[os.path.relpath(os.path.normpath(r["run"]), os.path.normpath(root))] = r
        return rows
    old, new = by_run(paths[0], old_root), by_run(paths[1], new_root)
    columns = [c for c in next(iter(old.values()), {}) if c.endswith("lag_decades")]
    groups = sorted({os.path.dirname(run) or "." for run in old})
    print(f"\nonsets.csv: each lag's largest difference over a group's runs, in decades "
          f"(changed: a lag one has and the other not)")
    print(f"{'column':<48}{'group':<16}{'largest':>8}  run")
    for column in columns:
        for group in groups:
            largest, where, changed = 0.0, "", 0
            for run, row in old.items():
                other = new.get(run)
                if other is None or (os.path.dirname(run) or ".") != group:
                    continue
                a, b = row.get(column, ""), other.get(column, "")
                if (a == "") != (b == ""):
                    changed += 1
                elif a != "" and abs(float(a) - float(b)) >= largest:
                    largest, where = abs(float(a) - float(b)), os.path.basename(run)
            if where or changed:
                value = f"{largest:>8.3f}  {where}" if where else f"{'-':>8}  "
                print(f"{column:<48}{group:<16}{value}{f'  changed in {changed}' if changed else ''}")

def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # piped into head: stop quietly
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    old_root, new_root = sys.argv[1], sys.argv[2]
    compare_geometry(old_root, new_root)
    compare_onsets(old_root, new_root)


if __name__ == "__main__":
    main()
