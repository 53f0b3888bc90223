#!/usr/bin/env python3
"""Turn raw benchmark runs into the markdown table of benches/RESULTS.md.

Input (stdin): one run per line, tab-separated:
    target  mode  clients  tps  mean_latency_ms
Several rounds give several lines for the same (target, mode, clients); the
table shows medians over rounds. The ratio and the added latency compare each
target with the baseline target (default `direct`) for the same mode and
client count.

Usage: report.py [--baseline direct] < runs.tsv
"""

import argparse
import statistics
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="direct")
    args = ap.parse_args()

    runs = {}
    targets, modes = [], []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        target, mode, clients, tps, lat_ms = line.split("\t")
        key = (target, mode, int(clients))
        runs.setdefault(key, []).append((float(tps), float(lat_ms) * 1000.0))
        if target not in targets:
            targets.append(target)
        if mode not in modes:
            modes.append(mode)
    if not runs:
        sys.exit("report.py: no runs on stdin")

    def medians(key):
        rs = runs.get(key)
        if not rs:
            return None
        return statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs), len(rs)

    print("| target | mode | clients | median tps | ratio to direct | mean latency (µs) | added latency (µs) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for clients in sorted({k[2] for k in runs}, reverse=True):
        for mode in modes:
            base = medians((args.baseline, mode, clients))
            for target in targets:
                m = medians((target, mode, clients))
                if m is None:
                    continue
                tps, lat_us, _ = m
                if base and target != args.baseline:
                    ratio = f"{tps / base[0]:.2f}"
                    added = f"{lat_us - base[1]:+.0f}"
                else:
                    ratio = "1.00" if target == args.baseline else "n/a"
                    added = "—"
                print(f"| {target} | {mode} | {clients} | {tps:,.0f} | {ratio} | {lat_us:,.0f} | {added} |")


if __name__ == "__main__":
    main()
