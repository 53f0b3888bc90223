#!/usr/bin/env python3
"""Turn raw benchmark runs into the markdown table of benches/RESULTS.md.

Input (stdin): one run per line, tab-separated:
    target  mode  clients  tps  mean_latency_ms  [cpu_user_us  cpu_sys_us]
where the last two are the relay's CPU per transaction over that run (`-`
for none, e.g. the direct connection). A target may carry the transport
of its backend leg after a slash (`switchyard/unix`). Several rounds give
several lines for the same (target, mode, clients); the table shows medians
over rounds with the spread (lowest–highest tps). The ratio and the added
latency compare each target with the baseline target (default `direct`)
for the same mode and client count.

With `--against NAME` (e.g. `switchyard`, for the routed comparison) two
more columns compare each target with NAME over the same backend transport
(`routed/tcp` with `switchyard/tcp`): its median tps over NAME's (with the
lowest and highest of the round-by-round ratios), and the difference of the
relay's median CPU per transaction (user + system).

Usage: report.py [--baseline direct] [--against NAME] < runs.tsv
"""

import argparse
import statistics
import sys


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def number(text):
    return None if text in ("-", "") else float(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="direct")
    ap.add_argument("--against", default=None, help="also compare every target with this one (same transport)")
    args = ap.parse_args()

    runs = {}
    targets, modes = [], []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        fields = line.split("\t")
        target, mode, clients, tps, lat_ms = fields[:5]
        user = number(fields[5]) if len(fields) > 5 else None
        system = number(fields[6]) if len(fields) > 6 else None
        key = (target, mode, int(clients))
        runs.setdefault(key, []).append((float(tps), float(lat_ms) * 1000.0, user, system))
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
        return {
            "tps": statistics.median(r[0] for r in rs),
            "low": min(r[0] for r in rs),
            "high": max(r[0] for r in rs),
            "lat": statistics.median(r[1] for r in rs),
            "user": median_or_none(r[2] for r in rs),
            "sys": median_or_none(r[3] for r in rs),
        }

    def cpu(value):
        return "—" if value is None else f"{value:.1f}"

    def against_key(target, mode, clients):
        """NAME over the same backend transport as `target`."""
        _, slash, transport = target.partition("/")
        return (f"{args.against}/{transport}" if slash else args.against, mode, clients)

    def against_cells(target, m, mode, clients):
        if not args.against:
            return ""
        key = against_key(target, mode, clients)
        if target == key[0]:
            return " 1.00 | — |"
        a = medians(key)
        if a is None:
            return " n/a | — |"
        ratio = f"{m['tps'] / a['tps']:.2f}"
        # Round by round (runs of one round are interleaved, so each pair
        # saw the same machine): the spread of the paired ratios.
        paired = [r[0] / b[0] for r, b in zip(runs[(target, mode, clients)], runs[key])]
        if len(paired) > 1:
            ratio += f" ({min(paired):.2f}–{max(paired):.2f})"
        if None in (m["user"], m["sys"], a["user"], a["sys"]):
            return f" {ratio} | — |"
        return f" {ratio} | {(m['user'] + m['sys']) - (a['user'] + a['sys']):+.1f} |"

    extra_head, extra_rule = "", ""
    if args.against:
        extra_head = f" ratio to {args.against} | relay CPU/tx vs {args.against} (µs) |"
        extra_rule = "---:|---:|"
    print(
        "| target | mode | clients | median tps (lowest–highest) | ratio to direct "
        "| mean latency (µs) | added latency (µs) | relay CPU/tx user (µs) | relay CPU/tx system (µs) |"
        + extra_head
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|" + extra_rule)
    for clients in sorted({k[2] for k in runs}, reverse=True):
        for mode in modes:
            base = medians((args.baseline, mode, clients))
            for target in targets:
                m = medians((target, mode, clients))
                if m is None:
                    continue
                if base and target != args.baseline:
                    ratio = f"{m['tps'] / base['tps']:.2f}"
                    added = f"{m['lat'] - base['lat']:+.0f}"
                else:
                    ratio = "1.00" if target == args.baseline else "n/a"
                    added = "—"
                spread = f"{m['tps']:,.0f} ({m['low']:,.0f}–{m['high']:,.0f})"
                print(
                    f"| {target} | {mode} | {clients} | {spread} | {ratio} | {m['lat']:,.0f} "
                    f"| {added} | {cpu(m['user'])} | {cpu(m['sys'])} |"
                    + against_cells(target, m, mode, clients)
                )


if __name__ == "__main__":
    main()
