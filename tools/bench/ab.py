#!/usr/bin/env python3
"""Summary of a tools/bench/ab.sh run: per queue count, row and job, the median IOPS of every side
(each binary and md) and each binary's ratio to md: the median of the per-rep ratios (each rep's
binary run against the md run right after it, which saw about the same host load), then the range
of those. usage: ab.py OUT_DIR"""
import glob, os, re, statistics, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import one  # noqa: E402


def main():
    d = sys.argv[1]
    if not os.path.isdir(os.path.join(d, "raw")) and os.path.exists(os.path.join(d, "raw.tar.xz")):
        subprocess.run(["tar", "-C", d, "-xJf", os.path.join(d, "raw.tar.xz")], check=True)
    runs = {}
    for p in glob.glob(os.path.join(d, "raw", "*.json")):
        m = re.match(r"q(\d+)\.(\w+?)\.([\w-]+)\.(\w+)\.(\d+)\.json$", os.path.basename(p))
        if not m:
            continue
        q, row, side, job, rep = m.groups()
        runs.setdefault((int(q), row, job), {}).setdefault(side, {})[int(rep)] = one(p)
    sides = sorted({s for v in runs.values() for s in v if s != "md"})
    print(open(os.path.join(d, "machine.txt")).read().replace("\n", " ").strip())
    hdr = f"{'q':>2} {'row':8} {'job':17}" + "".join(f" {s:>10}" for s in sides + ["md"]) + \
        "".join(f" {s + '/md':>16}" for s in sides)
    print(hdr)
    for (q, row, job) in sorted(runs):
        r = runs[(q, row, job)]
        med = {s: statistics.median(x["iops"] for x in r[s].values() if x) if any(r.get(s, {}).values()) else None
               for s in sides + ["md"]}
        line = f"{q:>2} {row:8} {job:17}" + "".join(f" {med[s]:>10,.0f}" if med[s] else f" {'-':>10}" for s in sides + ["md"])
        for s in sides:
            per = [r[s][k]["iops"] / r["md"][k]["iops"] for k in r.get(s, {})
                   if r[s][k] and r.get("md", {}).get(k)]
            if per:
                line += f" {statistics.median(per):5.2f} ({min(per):.2f}-{max(per):.2f})"
            else:
                line += f" {'-':>16}"
        print(line)


if __name__ == "__main__":
    main()
