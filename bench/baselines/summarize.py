#!/usr/bin/env python3
"""Median of every cf-latency figure across several runs' JSON files.

usage: summarize.py OUTPUT_STEM RUN.json [RUN.json ...]  ->  OUTPUT_STEM.md and OUTPUT_STEM.json
"""
import json
import statistics
import sys

FIGURES = ["p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"]


def fmt(ns):
    if ns is None:
        return "n/a"
    if ns < 100:
        return f"{ns:.2f} ns"
    if ns < 1e3:
        return f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} us"
    return f"{ns / 1e6:.2f} ms"


def main():
    stem, paths = sys.argv[1], sys.argv[2:]
    runs = [json.load(open(path)) for path in paths]
    host = runs[0]["host"]
    summary = {"host": host, "runs": len(runs), "scenarios": []}
    lines = [f"# cf-latency baseline: median of {len(runs)} runs", "",
             f"- CPU: {host['cpu_model']} ({host['vendor']}, family 0x{host['family']:x}, model 0x{host['model']:x})",
             f"- ISA level: {host['isa_level']}; kernel: {host['kernel']}; clocksource: {host['clocksource']}",
             f"- counter: {host['counter']} at {host['counter_ghz']:.4f} GHz; invariant TSC: {host['invariant_tsc']}",
             f"- pinned CPU: {host['pinned_cpu']}; {host['duration_s']} s per scenario; governor: {host['governor']}; "
             f"isolated CPUs: {host['isolated_cpus']}; SMT: {host['smt']}", ""]
    for index, scenario in enumerate(runs[0]["scenarios"]):
        name = scenario["scenario"]
        lines += [f"## {name}", "", scenario["description"], "",
                  "| series | " + " | ".join(FIGURES) + " | samples/run |",
                  "|---|" + "---:|" * (len(FIGURES) + 1)]
        out = {"scenario": name, "description": scenario["description"], "series": [], "ratios": []}
        for s_index, series in enumerate(scenario["series"]):
            medians = {}
            for figure in FIGURES:
                values = [run["scenarios"][index]["series"][s_index][figure] for run in runs]
                values = [v for v in values if v is not None]
                medians[figure] = statistics.median(values) if values else None
            count = statistics.median(run["scenarios"][index]["series"][s_index]["count"] for run in runs)
            out["series"].append({"name": series["name"], "count_median": count, **medians})
            lines.append(f"| {series['name']} | " + " | ".join(fmt(medians[f]) for f in FIGURES) + f" | {count:.0f} |")
        for r_index, ratio in enumerate(scenario["ratios"]):
            p50 = statistics.median(run["scenarios"][index]["ratios"][r_index]["p50"] for run in runs)
            p99 = statistics.median(run["scenarios"][index]["ratios"][r_index]["p99"] for run in runs)
            per_run = ", ".join(f"{run['scenarios'][index]['ratios'][r_index]['p50']:.3g}" for run in runs)
            out["ratios"].append({"label": ratio["label"], "p50": p50, "p99": p99})
            lines += ["", f"Ratio {ratio['label']}: p50 **{p50:.3g}x**, p99 **{p99:.3g}x** (p50 per run: {per_run})"]
        out["figures"] = []
        grids = {}        # table -> (rows, columns, {(row, column): median}), in first-seen order
        grid_runs = []    # per-run values of the grid figures, listed under the grids
        for f_index, figure in enumerate(scenario.get("figures", [])):
            values = [run["scenarios"][index]["figures"][f_index]["value"] for run in runs]
            values = [v for v in values if v is not None]
            value = statistics.median(values) if values else None
            kept = {"label": figure["label"], "value": value, "unit": figure["unit"]}
            shown = "n/a" if value is None else f"{value:.4g} {figure['unit']}"
            per_run = ", ".join(f"{v:.4g}" for v in values)
            if figure.get("table"):
                kept.update(table=figure["table"], row=figure["row"], column=figure["column"])
                rows, columns, cells = grids.setdefault(figure["table"], ([], [], {}))
                if figure["row"] not in rows:
                    rows.append(figure["row"])
                if figure["column"] not in columns:
                    columns.append(figure["column"])
                cells[(figure["row"], figure["column"])] = value
                grid_runs.append(f"- {figure['label']}: {shown} (per run: {per_run})")
            else:
                lines += ["" if f_index == 0 else None, f"- {figure['label']}: **{shown}** (per run: {per_run})"]
            out["figures"].append(kept)
        for table, (rows, columns, cells) in grids.items():
            lines += ["", f"{table} (medians):", "", "| | " + " | ".join(columns) + " |",
                      "|---|" + "---:|" * len(columns)]
            for row in rows:
                shown = [("-" if cells.get((row, c)) is None else f"{cells[(row, c)]:.4g}") for c in columns]
                lines.append(f"| {row} | " + " | ".join(shown) + " |")
        if grid_runs:
            lines += ["", "<details><summary>every figure of the tables, per run</summary>", ""] + grid_runs
            lines += ["", "</details>"]
        out["notes"] = scenario.get("notes", [])
        lines += [f"- note: {note}" for note in out["notes"]]
        lines = [line for line in lines if line is not None]
        lines.append("")
        summary["scenarios"].append(out)
    with open(stem + ".md", "w") as md:
        md.write("\n".join(lines))
    with open(stem + ".json", "w") as js:
        json.dump(summary, js, indent=2)
        js.write("\n")


if __name__ == "__main__":
    main()
