#!/usr/bin/env python3
"""The report's figures, drawn from a run directory's CSVs and its summary.json.

    report_figures.py RUN_DIR [RUN_DIR ...] [--out DIR]

`grokscope report` writes summary.json and then runs this script (it carries a copy compiled in);
it can also be run by hand. Per run, RUN_DIR/figures/ gets, as PNG and PDF:
  training      train and test accuracy and loss against step
  ntk           kernel distance to init and to the previous probe step
  ntk_pairwise  kernel distance between every two probe steps (when the run wrote it)
  geometry      capacity, radius, dimension and center correlation per layer
  overlay       normalized test accuracy, kernel distance and output-layer capacity, onsets marked
With several runs, DIR/ gets:
  onsets        every run's onsets on one log-step axis, a row per run
  replicates    where some runs differ only in their seed (the condition column of DIR/onsets.csv,
                which grokscope report writes first): each run's onsets relative to its own test
                rise, a row per condition
  comparison    accuracy, kernel distance and capacity side by side, a column per run (8 runs at most)
Exit status 3: matplotlib is missing (Debian: python3-matplotlib).
"""
import argparse
import csv
import json
import math
import os
import sys
import textwrap

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
except ImportError as e:  # the caller turns this into a hint to install the package
    print(f"report_figures: {e}", file=sys.stderr)
    sys.exit(3)


def legend(ax, **kwargs):
    """A legend where something is labelled (a run without probes has nothing to name)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def read_csv(path):
    """Columns of a grokscope CSV as lists of strings; None when the file is missing or empty."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        return None
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    return {name: [r[i] for r in body] for i, name in enumerate(header)}


def numbers(values):
    return np.array([float(v) for v in values])


def where(table, column, value):
    keep = [i for i, v in enumerate(table[column]) if v == value]
    return {k: [col[i] for i in keep] for k, col in table.items()}


def log_axis(ax):
    # symlog keeps step 0 (the initial state) on an otherwise logarithmic axis.
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.set_xlabel("step")
    ax.grid(True, which="major", alpha=0.3)


def mark(ax, step, label, color):
    if step is not None:
        ax.axvline(step, color=color, linestyle="--", linewidth=1, label=label)


def save(fig, directory, name, rect=None):
    """rect: the part of the figure (left, bottom, right, top, as fractions) the axes may fill."""
    os.makedirs(directory, exist_ok=True)
    fig.tight_layout(rect=rect)
    for ext in ("png", "pdf"):
        fig.savefig(os.path.join(directory, f"{name}.{ext}"), dpi=130)
    plt.close(fig)


def load_run(run):
    summary_path = os.path.join(run, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    return {
        "dir": run,
        "name": summary.get("recipe") or os.path.basename(os.path.normpath(run)),
        "summary": summary,
        "metrics": read_csv(os.path.join(run, "metrics.csv")),
        "ntk": read_csv(os.path.join(run, "ntk.csv")),
        "geometry": read_csv(os.path.join(run, "geometry.csv")),
    }


def rise_t50(summary, from_start=False):
    """The midpoint of the test rise after the fit (a fall is no rise); with from_start, that of
    a run that generalized while it fit, measured from step 0, when there was none after."""
    keys = ("test_accuracy", "test_accuracy_from_start") if from_start else ("test_accuracy",)
    for key in keys:
        rise = summary.get(key) or {}
        if rise.get("moved") and rise.get("direction") == "up" and rise.get("t50") is not None:
            return rise["t50"]
    return None


def ntk_probe_set(r):
    sets = r["summary"].get("ntk", {})
    return "train" if "train" in sets else next(iter(sets), None)


def output_layer(r):
    for layer in r["summary"].get("layers", []):
        if layer["layer"] == "output":
            return layer
    return None


def plot_training(r, out):
    m = r["metrics"]
    step = numbers(m["step"])
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, color in (("train", "tab:blue"), ("test", "tab:orange")):
        acc.plot(step, numbers(m[f"{split}_accuracy"]), color=color, label=split)
        loss.plot(step, numbers(m[f"{split}_loss"]), color=color, label=split)
    s = r["summary"]
    mark(acc, s.get("t_fit"), "t_fit", "tab:blue")
    mark(acc, rise_t50(s, from_start=True), "test t_50", "tab:orange")
    acc.set_ylabel("accuracy")
    acc.set_ylim(0, 1.02)
    loss.set_ylabel("loss")
    loss.set_yscale("log")
    for ax in (acc, loss):
        log_axis(ax)
        legend(ax, fontsize=8)
    fig.suptitle(f"{r['name']}: accuracy and loss")
    save(fig, out, "training")


def plot_ntk(r, out):
    t = r["ntk"]
    fig, (dist, vel) = plt.subplots(1, 2, figsize=(10, 3.8))
    for probe_set, color in (("train", "tab:blue"), ("test", "tab:orange")):
        rows = where(t, "probe_set", probe_set)
        if not rows["step"]:
            continue
        step = numbers(rows["step"])
        dist.plot(step, numbers(rows["distance_to_init"]), "o-", ms=3, color=color, label=f"{probe_set} points")
        prev = numbers(rows["distance_to_previous"])
        vel.plot(step[1:], prev[1:], "o-", ms=3, color=color, label=f"{probe_set} points")
        onsets = r["summary"].get("ntk", {}).get(probe_set, {})
        mark(dist, onsets.get("t_half_max"), f"{probe_set}: 50% of max", color)
    mark(dist, rise_t50(r["summary"]), "test t_50", "black")
    dist.set_ylabel("kernel distance to init")
    vel.set_ylabel("kernel distance to previous probe step")
    vel.set_yscale("log")
    for ax in (dist, vel):
        log_axis(ax)
        legend(ax, fontsize=8)
    fig.suptitle(f"{r['name']}: NTK movement (½‖K/‖K‖ − K'/‖K'‖‖²)")
    save(fig, out, "ntk")


def plot_pairwise(r, out):
    steps_file = os.path.join(r["dir"], "ntk_pairwise_steps.npy")
    panels = [(s, os.path.join(r["dir"], f"ntk_pairwise_{s}.npy")) for s in ("train", "test")]
    panels = [(s, p) for s, p in panels if os.path.exists(p)]
    if not panels or not os.path.exists(steps_file):
        return
    steps = np.load(steps_file)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    for ax, (probe_set, path) in zip(axes[0], panels):
        d = np.load(path)
        im = ax.imshow(d, cmap="magma", origin="lower")
        ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).round().astype(int))
        ax.set_xticks(ticks, [str(int(steps[i])) for i in ticks], rotation=60, fontsize=7)
        ax.set_yticks(ticks, [str(int(steps[i])) for i in ticks], fontsize=7)
        ax.set_xlabel("probe step")
        ax.set_ylabel("probe step")
        ax.set_title(f"{probe_set} points")
        fig.colorbar(im, ax=ax, fraction=0.046, label="kernel distance")
    fig.suptitle(f"{r['name']}: kernel distance between probe steps")
    save(fig, out, "ntk_pairwise")


def plot_geometry(r, out):
    g = r["geometry"]
    layers = list(dict.fromkeys(g["layer"]))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(layers)))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    quantities = (("capacity", "capacity α_M"), ("radius", "radius R_M"), ("dimension", "dimension D_M"),
                  ("center_correlation", "center correlation"))
    for ax, (column, label) in zip(axes.flat, quantities):
        for layer, color in zip(layers, colors):
            rows = where(g, "layer", layer)
            ax.plot(numbers(rows["step"]), numbers(rows[column]), "o-", ms=2.5, color=color, label=layer)
        mark(ax, rise_t50(r["summary"]), "test t_50", "black")
        ax.set_ylabel(label)
        log_axis(ax)
    legend(axes[0, 0], fontsize=7)
    title = f"{r['name']}: representational geometry per layer (MFTMA)"
    # The K of the center structure removed first: where it changes between steps, radius and
    # dimension jump with it (docs/geometry.md), which a reader of the curves should know.
    ks = sorted({int(float(k)) for k in g.get("k", []) if k.strip().lstrip("-").isdigit()})
    if len(ks) > 1:
        title += (f"\n(the removed center structure's K varies between steps, {ks[0]} to {ks[-1]}: radius and "
                  f"dimension jump with it; probe.geometry_center_k fixes K)")
    elif ks:
        title += f", center-structure K = {ks[0]}"
    fig.suptitle(title, fontsize=10)
    save(fig, out, "geometry")


def normalized(values, start, final):
    return (values - start) / (final - start) if final != start else None


def draw_overlay(ax, r):
    """Test accuracy, kernel distance and output capacity, each scaled to run from 0 to 1."""
    s = r["summary"]
    m = r["metrics"]
    test = s.get("test_accuracy") or {}
    acc = normalized(numbers(m["test_accuracy"]), test.get("start", 0), test.get("final", 1))
    if acc is not None and test.get("moved"):
        ax.plot(numbers(m["step"]), acc, color="tab:orange", label="test accuracy (0 at t_fit, 1 at end)")
    probe_set = ntk_probe_set(r)
    if r["ntk"] is not None and probe_set:
        rows = where(r["ntk"], "probe_set", probe_set)
        d = numbers(rows["distance_to_init"])
        if len(d) and np.nanmax(d) > 0:
            ax.plot(numbers(rows["step"]), d / np.nanmax(d), "o-", ms=3, color="tab:purple",
                    label=f"kernel distance to init / its max ({probe_set} points)")
            mark(ax, s["ntk"][probe_set].get("t_half_max"), "kernel: 50% of its maximum", "tab:purple")
    out_layer = output_layer(r)
    if r["geometry"] is not None and out_layer and out_layer["capacity"]["moved"]:
        rows = where(r["geometry"], "layer", "output")
        c = normalized(numbers(rows["capacity"]), out_layer["capacity"]["start"], out_layer["capacity"]["final"])
        ax.plot(numbers(rows["step"]), c, "s-", ms=3, color="tab:green", label="output-layer capacity (0 at t_fit, 1 at end)")
        mark(ax, out_layer["capacity"].get("t50"), "capacity t_50", "tab:green")
    mark(ax, s.get("t_fit"), "t_fit", "tab:blue")
    mark(ax, rise_t50(s), "test t_50", "tab:orange")
    ax.set_ylabel("normalized")
    ax.set_ylim(-0.15, 1.45)
    log_axis(ax)
    legend(ax, fontsize=7, loc="upper left", ncol=2, framealpha=0.9)


def plot_overlay(r, out):
    fig, ax = plt.subplots(figsize=(8, 4.6))
    draw_overlay(ax, r)
    verdict = r["summary"].get("verdict", "")
    ax.set_title("\n".join(textwrap.wrap(f"{r['name']}: {verdict}", 95)), fontsize=9)
    save(fig, out, "overlay")


def plot_comparison(runs, out):
    fig, axes = plt.subplots(3, len(runs), figsize=(4.2 * len(runs), 9), squeeze=False, sharex=True)
    for col, r in enumerate(runs):
        m = r["metrics"]
        step = numbers(m["step"])
        top, mid, bottom = axes[0, col], axes[1, col], axes[2, col]
        top.plot(step, numbers(m["train_accuracy"]), color="tab:blue", label="train")
        top.plot(step, numbers(m["test_accuracy"]), color="tab:orange", label="test")
        top.set_ylim(0, 1.02)
        delay = r["summary"].get("delay_decades")
        verdict = r["summary"].get("verdict", "")
        tag = ("no delay" if "no delay" in verdict else
               "no rise" if delay is None else f"delayed {delay:.1f} decades")
        top.set_title(f"{r['name']}\n({tag})", fontsize=9)
        probe_set = ntk_probe_set(r)
        if r["ntk"] is not None and probe_set:
            rows = where(r["ntk"], "probe_set", probe_set)
            mid.plot(numbers(rows["step"]), numbers(rows["distance_to_init"]), "o-", ms=3, color="tab:purple")
        else:
            mid.text(0.5, 0.5, "no ntk.csv", ha="center", transform=mid.transAxes, color="gray")
        rows = where(r["geometry"], "layer", "output") if r["geometry"] is not None else {"step": []}
        if rows["step"]:
            bottom.plot(numbers(rows["step"]), numbers(rows["capacity"]), "s-", ms=3, color="tab:green")
        else:
            bottom.text(0.5, 0.5, "no geometry.csv", ha="center", transform=bottom.transAxes, color="gray")
        # The test rise after the fit, or for a run that generalized as it fit, from step 0.
        t50 = rise_t50(r["summary"], from_start=True)
        for ax in (top, mid, bottom):
            log_axis(ax)
            mark(ax, t50, None, "tab:orange")
        if col == 0:
            top.set_ylabel("accuracy")
            legend(top, fontsize=8)
            mid.set_ylabel("kernel distance to init")
            bottom.set_ylabel("output-layer capacity")
    fig.suptitle("runs side by side (dashed: test t_50)")
    save(fig, out, "comparison")


# Side by side, a column per run, is readable up to about this many runs; a sweep gets onsets only.
MAX_COLUMNS = 8
# The onsets figure's legend, by the first words of each label.
LEGEND_ORDER = ["t_fit", "kernel", "test accuracy", "test accuracy rising from step 0", "output-layer capacity",
                "output-layer radius", "output-layer dimension", "output-layer center correlation"]
# The output layer's other measures: their t_50 marks (the report leaves radius and dimension out
# where the center structure's K changed after the fit), as in replicates.png.
MEASURE_MARKS = [("radius", "v", "tab:red", False), ("dimension", "<", "tab:brown", False),
                 ("center_correlation", "o", "tab:gray", True)]


def span(ax, y, rise, color, marker, label, hollow=False):
    """A rise's t_10 to t_90 as a bar at height y, its t_50 as a marker."""
    if not rise or not rise.get("moved") or rise.get("t50") is None:
        return
    t10, t90 = rise.get("t10"), rise.get("t90")
    if t10 is not None and t90 is not None:
        ax.plot([t10, t90], [y, y], color=color, linewidth=5, alpha=0.35, solid_capstyle="butt")
    ax.plot([rise["t50"]], [y], marker, ms=8, color=color, markerfacecolor="white" if hollow else color, label=label)


def plot_onsets(runs, out):
    """Every run's onsets on one log-step axis, a row per run: when it fit, when the kernel's
    distance to init first passed the report's threshold, half its maximum and half of its value
    at the test rise, when test accuracy and output-layer capacity rose (t_10 to t_90 as a bar,
    t_50 marked), the output layer's radius, dimension and center correlation midpoints where the
    report has them, and the delay, lead and lag in decades at the right."""
    fig, ax = plt.subplots(figsize=(9.5, 1.6 + 0.5 * len(runs)))
    labels = {}
    for row, r in enumerate(runs):
        y = len(runs) - 1 - row  # the first run on top
        s = r["summary"]
        if y % 2 == 0:
            ax.axhspan(y - 0.5, y + 0.5, color="0.95", zorder=0)
        if s.get("t_fit") is not None:
            ax.plot([s["t_fit"]], [y], "|", ms=16, mew=2.5, color="tab:blue", label="t_fit (train accuracy 99%)")
        if rise_t50(s) is not None:
            span(ax, y, s["test_accuracy"], "tab:orange", "o", "test accuracy: t_10 to t_90, t_50")
        else:  # generalized while it fit: its rise from step 0, hollow
            from_start = s.get("test_accuracy_from_start") or {}
            if from_start.get("direction") == "up":
                span(ax, y, from_start, "tab:orange", "o", "test accuracy rising from step 0 (no rise after t_fit)", hollow=True)
        probe_set = ntk_probe_set(r)
        ntk = s.get("ntk", {}).get(probe_set, {}) if probe_set else {}
        if ntk.get("t_above_absolute") is not None:
            ax.plot([ntk["t_above_absolute"]], [y], "D", ms=7, color="tab:purple", markerfacecolor="white",
                    label=f"kernel: distance to init first above {s.get('rules', {}).get('ntk_absolute', 0.1):g}")
        if ntk.get("t_half_max") is not None:
            ax.plot([ntk["t_half_max"]], [y], "D", ms=7, color="tab:purple", label="kernel: 50% of its maximum distance to init")
        if ntk.get("t_half_of_distance_at_test_t50") is not None:
            ax.plot([ntk["t_half_of_distance_at_test_t50"]], [y], "^", ms=7, color="tab:purple",
                    label="kernel: 50% of its distance at the test rise")
        out_layer = output_layer(r)
        capacity = out_layer["capacity"] if out_layer else None
        if capacity and capacity.get("direction") == "up":
            span(ax, y + 0.22, capacity, "tab:green", "s", "output-layer capacity: t_10 to t_90, t_50")
        for name, marker, colour, hollow in MEASURE_MARKS:
            t50 = ((out_layer or {}).get(name) or {}).get("t50")
            if t50 is not None and t50 > 0:
                ax.plot([t50], [y - 0.22], marker, ms=6, color=colour, markerfacecolor="white" if hollow else colour,
                        label=f"output-layer {name.replace('_', ' ')}: t_50")
        lead = ntk.get("lead_decades_over_test_t50")
        lag = out_layer.get("lag_decades_after_test_t50") if out_layer else None
        delay = s.get("delay_decades")
        verdict = s.get("verdict", "")
        labels[y] = r["name"]
        notes = ["did not fit" if s.get("t_fit") is None else "no delay" if "no delay" in verdict else
                 f"delay {delay:.1f}" if delay is not None else "no rise"]
        if lead is not None:
            notes.append(f"ntk {round(lead, 1) + 0.0:+.1f}")  # + 0.0: "+0.0", not "-0.0"
        if lag is not None:
            notes.append(f"cap {round(lag, 1) + 0.0:+.1f}")
        ax.annotate("  ".join(notes), xy=(1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ax.set_yticks(sorted(labels), [labels[y] for y in sorted(labels)], fontsize=8)
    ax.set_ylim(-0.6, len(runs) - 0.4)
    log_axis(ax)
    last = [r["summary"].get("last_step") for r in runs]
    if any(last):
        ax.set_xlim(right=1.2 * max(t for t in last if t))  # the longest run's whole length
    ax.grid(False, axis="y")
    # One legend entry per kind of mark, in the order of the marks' meaning (t_fit, kernel, test,
    # capacity), whichever run drew each first.
    handles, names = ax.get_legend_handles_labels()
    seen = {}
    for h, n in sorted(zip(handles, names), key=lambda hn: LEGEND_ORDER.index(hn[1].split(":")[0].split(" (")[0])):
        seen.setdefault(n, h)
    # At the foot of the figure, in a strip of 0.5 inch kept from the axes.
    height = fig.get_figheight()
    fig.legend(seen.values(), seen.keys(), fontsize=7, loc="lower center", ncol=2, frameon=False,
               bbox_to_anchor=(0.5, 0.02 / height))
    ax.set_title("onsets per run (right: delay of the test rise after the fit, NTK lead and capacity lag, in decades)", fontsize=9)
    save(fig, out, "onsets", rect=(0, 0.5 / height, 1, 1))


def run_labels(dirs):
    """Each directory's last component, or as many of its last components as it takes to tell the
    runs apart ("init8/seed=0" beside "init2/seed=0"), as the report's table names them."""
    parts = [run_key(d).split(os.sep) for d in dirs]
    for k in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-k:]).lstrip("/") for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return list(dirs)


def run_key(directory):
    return os.path.normpath(os.path.abspath(directory))


def read_conditions(out):
    """Each run's condition, by run directory, from OUT/onsets.csv; {} without one."""
    table = read_csv(os.path.join(out, "onsets.csv"))
    if not table or "condition" not in table:
        return {}
    return {run_key(d): c for d, c in zip(table["run"], table["condition"]) if c}


REPLICATE_MARKS = [  # (label, marker, colour, hollow)
    ("t_fit (train accuracy 99%)", "|", "tab:blue", False),
    ("kernel: distance to init first above {ntk_absolute:g}", "D", "tab:purple", True),
    ("kernel: 50% of its maximum distance to init", "D", "tab:purple", False),
    ("kernel: 50% of its distance at the test rise", "^", "tab:purple", False),
    ("output-layer capacity: t_50", "s", "tab:green", False),
] + [(f"output-layer {name.replace('_', ' ')}: t_50", marker, colour, hollow) for name, marker, colour, hollow in MEASURE_MARKS]


def plot_replicates(runs, conditions, out):
    """Runs of one condition with different seeds, a row per condition: each run's t_fit, kernel
    onsets and output-layer capacity midpoint (and radius, dimension and center correlation
    midpoints where the report has them: not where K varied) in decades from its own test rise
    (t_50 at 0), so that the spread over seeds shows at a glance. False (nothing drawn) without
    replicates."""
    groups = {}  # condition -> its runs, conditions in the order of their first runs
    for r in runs:
        condition = conditions.get(run_key(r["dir"]))
        if condition:
            groups.setdefault(condition, []).append(r)
    if not any(len(members) > 1 for members in groups.values()):
        return False
    fig, ax = plt.subplots(figsize=(9.5, 1.9 + 0.75 * len(groups)))
    rules = runs[0]["summary"].get("rules", {})
    together = rules.get("same_time_decades", 0.25)
    ax.axvspan(-together, together, color="tab:orange", alpha=0.12, zorder=0,
               label=f"with the test rise (within {together:g} decades of its t_50)")
    ax.axvline(0, color="tab:orange", linewidth=1.5, zorder=1)
    labels = {}
    for row, (condition, members) in enumerate(groups.items()):
        y = len(groups) - 1 - row  # the first condition on top
        labels[y] = condition
        rose = delayed = 0
        for k, r in enumerate(members):
            s = r["summary"]
            t50 = rise_t50(s)
            if t50 is None:
                continue
            rose += 1
            delayed += "no delay" not in s.get("verdict", "")
            dy = 0.6 * ((k + 0.5) / len(members) - 0.5)  # each run on its own line within the row
            probe_set = ntk_probe_set(r)
            ntk = s.get("ntk", {}).get(probe_set, {}) if probe_set else {}
            layer = output_layer(r)
            capacity = layer["capacity"] if layer and layer["capacity"].get("moved") else {}
            measures = [(layer or {}).get(name) or {} for name, *_ in MEASURE_MARKS]
            steps = [s.get("t_fit"), ntk.get("t_above_absolute"), ntk.get("t_half_max"),
                     ntk.get("t_half_of_distance_at_test_t50"), capacity.get("t50")] + [m.get("t50") for m in measures]
            for (label, marker, colour, hollow), t in zip(REPLICATE_MARKS, steps):
                if t is not None and t > 0:
                    ax.plot([math.log10(t / t50)], [y + dy], marker, ms=7 if marker != "|" else 11, mew=2 if marker == "|" else 1,
                            color=colour, markerfacecolor="white" if hollow else colour,
                            label=label.format(ntk_absolute=rules.get("ntk_absolute", 0.1)))
        note = f"{len(members)} run{'s' if len(members) > 1 else ''}: rose in {rose}, delayed in {delayed}"
        ax.annotate(note, xy=(1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8)
        if rose == 0:
            ax.annotate("no test rise after the fit", xy=(0, y), ha="center", va="center", fontsize=8, color="gray")
    ax.set_yticks(sorted(labels), [labels[y] for y in sorted(labels)], fontsize=8)
    ax.set_ylim(-0.6, len(groups) - 0.4)
    ax.set_xlabel("decades from the run's own test rise: log10(step / test t_50)")
    ax.grid(True, axis="x", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    seen = {}
    for h, n in zip(handles, names):
        seen.setdefault(n, h)
    height = fig.get_figheight()
    fig.legend(seen.values(), seen.keys(), fontsize=7, loc="lower center", ncol=2, frameon=False,
               bbox_to_anchor=(0.5, 0.02 / height))
    ax.set_title("replicates: each run's onsets relative to its own test rise, a row per condition "
                 "(runs of one condition differ only in their seed)", fontsize=9)
    save(fig, out, "replicates", rect=(0, 0.65 / height, 1, 1))
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default=None, help="where comparison.{png,pdf} goes (several runs)")
    args = parser.parse_args()
    runs = [load_run(d) for d in args.runs]
    # Runs of one recipe (a sweep through --set) are told apart by their directories.
    if len({r["name"] for r in runs}) < len(runs):
        for r, name in zip(runs, run_labels([r["dir"] for r in runs])):
            r["name"] = name
    failed = False
    for r in runs:
        if r["metrics"] is None:
            print(f"report_figures: {r['dir']}: no metrics.csv rows; no figures", file=sys.stderr)
            failed = True
            continue
        out = os.path.join(r["dir"], "figures")
        plot_training(r, out)
        if r["ntk"] is not None:
            plot_ntk(r, out)
            plot_pairwise(r, out)
        if r["geometry"] is not None:
            plot_geometry(r, out)
        plot_overlay(r, out)
    drawable = [r for r in runs if r["metrics"] is not None]
    if len(drawable) > 1:
        out = args.out or os.path.dirname(os.path.abspath(drawable[0]["dir"]))
        plot_onsets(drawable, out)
        plot_replicates(drawable, read_conditions(out), out)
        if len(drawable) <= MAX_COLUMNS:
            plot_comparison(drawable, out)
        else:
            print(f"report_figures: {len(drawable)} runs are too many side by side (at most {MAX_COLUMNS}): "
                  f"onsets.png has them all, no comparison.png", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
