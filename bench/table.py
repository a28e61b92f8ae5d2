#!/usr/bin/env python3
"""Turns scripts/bench's result lines (JSON, one a line, on stdin) into Markdown tables.

Each figure is the median over the repeats. Ratios are percloud (plain HTTP) against each
peer, oriented so that > 1 means percloud is better (faster, or less time).
"""

import argparse
import json
import statistics
import sys

MiB = 1 << 20
GiB = 1 << 30
PEERS = ["dufs", "nginx", "rclone"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, required=True)
    ap.add_argument("--small-count", type=int, required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--range-file", type=int, required=True)
    args = ap.parse_args()

    runs = {}  # (server, workload) -> [result]
    servers = []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        if rec["server"] not in servers:
            servers.append(rec["server"])
        runs.setdefault((rec["server"], rec["workload"]), []).append(rec["result"])
    peers = [p for p in PEERS if p in servers]
    cols = [s for s in ["percloud", "percloud-tls"] if s in servers] + peers

    def first(server, workload, key):
        vals = runs.get((server, workload), [])
        return vals[0][key] / 1024 if vals else None

    def last(server, workload, key):
        vals = runs.get((server, workload), [])
        return vals[-1][key] / 1024 if vals else None

    def med(server, workload, fn):
        vals = [fn(r) for r in runs.get((server, workload), [])]
        return statistics.median(vals) if vals else None

    def rate(workload):  # MiB/s
        return lambda s: med(s, workload, lambda r: r["bytes"] / MiB / r["seconds"])

    big = f"{args.big // MiB} MiB" if args.big < GiB else f"{args.big // GiB} GiB"
    rows = [
        (f"(1) upload {big}, MiB/s", rate("upload"), True),
        (f"(2) download {big}, MiB/s", rate("download"), True),
        ("(2b) download it again, MiB/s", rate("download-again"), True),
        ("(2c) download after a restart (percloud hashes every byte), MiB/s",
         rate("download-restarted"), True),
        (f"(3) upload {args.small_count} × 4 KiB, 4 connections, files/s",
         lambda s: med(s, "small", lambda r: r["files"] / r["seconds"]), True),
        ("(3b) the same over 16 connections, files/s",
         lambda s: med(s, "small16", lambda r: r["files"] / r["seconds"]), True),
        ("(3c) the same by Nextcloud bulk upload (100 files a request), 4 connections, files/s",
         lambda s: med(s, "smallbulk" if s.startswith("percloud") else "small",
                       lambda r: r["files"] / r["seconds"]), True),
        (f"(4) PROPFIND depth 1 on {args.small_count + 1} entries, ms",
         lambda s: med(s, "propfind", lambda r: r["seconds"] * 1000), False),
        (f"(5) {args.clients} clients × {args.range_file // MiB} MiB in 1 MiB ranges, MiB/s",
         rate("ranges"), True),
        (f"(6a) re-upload of known {big}, MiB/s", rate("reupload"), True),
    ]

    def fmt(v, digits=1):
        if v is None:
            return "failed"
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.{digits}f}"

    def ratio(a, b, higher_better):
        if a is None or b is None or a == 0 or b == 0:
            return "–"
        return f"{(a / b) if higher_better else (b / a):.2f}×"

    head = ["workload"] + cols + [f"× {p}" for p in peers]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, fn, higher in rows:
        vals = {s: fn(s) for s in cols}
        cells = [label] + [fmt(vals[s]) for s in cols]
        cells += [ratio(vals.get("percloud"), vals[p], higher) for p in peers]
        print("| " + " | ".join(cells) + " |")

    print()
    print("(3c): the peers have no bulk upload, so their figure there is their (3); the ratios "
          "compare percloud's bulk upload with their one PUT per file.")
    print()
    print("Bytes added to the data folder (6): the same file again under another name, then a copy with one byte changed in the middle.")
    print()
    print("| server | copy added | % of size | edited copy added | % of size |")
    print("|---|---|---|---|---|")
    for s in cols:
        d = runs.get((s, "dedup"))
        if not d:
            continue
        d = d[0]
        print(f"| {s} | {d['copy_added'] / MiB:.1f} MiB | {100 * d['copy_added'] / d['bytes']:.2f}% "
              f"| {d['edit_added'] / MiB:.1f} MiB | {100 * d['edit_added'] / d['bytes']:.2f}% |")

    print()
    print("Server memory (MiB; peak = during the workload in the first repeat, on a fresh process; "
          "last = peak in the last repeat of (5)) and CPU (seconds of server CPU per GiB ingested, median).")
    print()
    wl = [("upload", "(1)"), ("download", "(2)"), ("small", "(3)"), ("propfind", "(4)"), ("ranges", "(5)")]
    head = ["server", "idle RSS"] + [f"peak {n}" for _, n in wl] + ["last (5)", "CPU s/GiB (1)", "CPU s/GiB (3)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for s in cols:
        idle = med(s, "idle", lambda r: r["rss_kib"] / 1024)
        # The first repeat: a fresh process. Later repeats start from whatever the allocator
        # kept of the earlier ones, which is reported as the last column.
        peaks = [first(s, w, "peak_rss_kib") for w, _ in wl]
        kept = last(s, "ranges", "peak_rss_kib")
        cpu_big = med(s, "upload", lambda r: r["cpu_seconds"] / (r["bytes"] / GiB))
        cpu_small = med(s, "small", lambda r: r["cpu_seconds"] / (r["bytes"] / GiB))
        cells = [s, fmt(idle)] + [fmt(p) for p in peaks] + [fmt(kept), fmt(cpu_big, 2), fmt(cpu_small, 0)]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
