#!/usr/bin/env python3
"""Refresh the generated parts of README.md's "Benchmarks" section from the latest results:
the targets table across both kernels, each kernel's table and chart, and the host-side engine
figures. The prose around them (introduction, soak, observations) is written by hand; the
generated parts sit between marker comments:

    <!-- bench:targets -->  ...  <!-- /bench:targets -->
    <!-- bench:lts -->  ...  <!-- /bench:lts -->      (and bench:latest, bench:engine)

usage: python3 tools/bench/readme.py [README.md] [--results DIR (bench-results)]
Reads DIR/latest-{lts,latest}.{json,md} and DIR/latest-engine.json; fails if a marker is missing.
"""
import json, os, re, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zram_report

JOBS = [("randread4k_qd32", "4k rr QD32"), ("randwrite4k_qd32", "4k rw QD32"), ("randread4k_qd1", "4k rr QD1"),
        ("read1m_qd8", "1M read QD8"), ("write1m_qd8", "1M write QD8"), ("randrw70_4k_qd32", "4k 70/30 QD32")]
NAMES = {"file": "single file vs loop", "stripe4": "stripe x4 vs md raid0", "raid10": "raid10 x4 vs md raid10",
         "mirror2": "mirror x2 vs md raid1", "compress": "compress (2:1 data) vs uncompressed file",
         "compress_rand": "compress (random data) vs uncompressed file",
         "null_file": "single file vs do-nothing ublk target", "null_stripe4": "stripe x4 vs do-nothing ublk target",
         "batch_off": "single file, BATCH_IO vs per-tag commands",
         "nbd": "nbd leaf vs kernel NBD client", "mirror_nbd": "mirror file+nbd vs md raid1 loop+nbd, nbd write-mostly"}



def layer_reads(d, row, job):
    for r in d.get("layer_reads") or []:
        if r["row"] == row and r["job"] == job:
            return f"{r['ratio']:.2f}x" + (" ✓" if r["met"] else " ✗")
    return None


def cell(d, row, job):
    for r in d["rows"]:
        if r["row"] == row and r["job"] == job:
            if r.get("ratio") is None:
                return "n/a"
            m = r.get("met")
            return f"{r['ratio']:.2f}x" + ("" if m is None else (" ✓" if m else " ✗"))
    return None


def latency(d):
    for r in d["rows"]:
        if r["row"] == "file" and r["job"] == "randread4k_qd1" and r.get("ours") and r.get("ref"):
            x = r["ours"]["p50_us"] / r["ref"]["p50_us"]
            return f"{x:.2f}x " + ("✓" if x <= 1.2 else "✗")
    return "n/a"


def scaling(d):
    s = d.get("scaling") or {}
    if not s.get("ratio"):
        return "n/a"
    return f"{s['ratio']:.2f}x" + (" ✓" if s.get("met") else " ✗")


def targets(lts, new, eng):
    out = [f"| ratio (ours / reference) | target | {lts['machine']['kernel']} | {new['machine']['kernel']} |",
           "| --- | --- | ---: | ---: |"]
    for row, name in NAMES.items():
        for job, jn in JOBS:
            a, b = cell(lts, row, job), cell(new, row, job)
            if a is None and b is None:
                continue
            tgt = next((r.get("target") or "–" for r in lts["rows"] + new["rows"]
                        if r["row"] == row and r["job"] == job), "–")
            out.append(f"| {name}, {jn} | {tgt} | {a or '–'} | {b or '–'} |")
        if row == "file":
            out.append(f"| single file vs loop, 4k QD1 p50 latency | <= 1.2x | {latency(lts)} | {latency(new)} |")
    for row in ("stripe4", "raid10", "mirror2"):
        for job, jn in JOBS:
            a, b = layer_reads(lts, row, job), layer_reads(new, row, job)
            if a or b:
                out.append(f"| {NAMES[row].split(' vs ')[0]} vs single file (same run), {jn} | >= 0.95x | "
                           f"{a or '–'} | {b or '–'} |")
    out += zram_report.target_rows(lts, new)
    out.append(f"| 2 queues / 1 queue (4k rr QD32, 2 jobs) | >= 1.6 | {scaling(lts)} | {scaling(new)} |")
    if eng:
        out.append(f"| engine CPU/IO vs fio direct (host {eng['kernel']}) | <= 1.2 | {eng['ratio']:.2f}x "
                   f"{'✓' if eng['met'] else '✗'} (host, kernel-independent) | |")
        for r in (eng.get("raid") or {}).get("rows", []):
            if r.get("target"):
                for g, gn in (("raid10", "raid10 x4"), ("mirror2", "mirror x2")):
                    out.append(f"| host engine CPU/IO {gn} vs stripe x4, {r['job']} | <= {r['target']:.2f}x | "
                               f"{r['ratio'][g]:.2f}x {'✓' if r['ratio'][g] <= r['target'] else '✗'} "
                               "(host, kernel-independent) | |")
        for r in (eng.get("compress") or {}).get("rows", []):
            if r.get("target"):
                out.append(f"| host compress vs uncompressed, {r['job']} (real CPU) | >= {r['target']:.1f}x | "
                           f"{r['ratio']:.2f}x {'✓' if r['met'] else '✗'} (host, kernel-independent) | |")
    return "\n".join(out)


def kernel(results, k, d, title):
    md = open(os.path.join(results, f"latest-{k}.md")).read().strip()
    lines = [l for l in md.splitlines() if not l.startswith("![")]  # our own image line below
    return (f"### {title}\n\n" + "\n".join(lines) +
            f"\n\n![ublk-compose vs loop/md, {title}, QEMU TCG](bench-results/latest-{k}.png)")


def engine(e):
    s = (f"### Engine CPU per I/O (host, no ublk)\n\nHost-side engine (no ublk; {e['kernel']}, {e['nproc']} CPU "
         f"{e['cpu']}, files on {e['medium']}): 4k randread QD32 through stripe x4: "
         f"**{e['ours_cpu_us_per_io']:.2f} µs CPU/IO** ({e['ours_iops']:,.0f} IOPS) vs fio direct on the 4 files "
         f"**{e['fio_cpu_us_per_io']:.2f} µs/IO** ({e['fio_iops']:,.0f} IOPS) → **{e['ratio']:.2f}x** "
         f"(target <= 1.2: {'met' if e['met'] else 'not met'}). Both as getrusage of the whole process incl. "
         f"io-wq workers; fio's own usr+sys figure (job thread only) is "
         f"{e['fio_cpu_us_per_io_fio_reported']:.2f} µs/IO.")
    rd = e.get("raid")
    if rd:
        s += (f"\n\n### RAID on real CPU (host, no ublk)\n\n{rd['what']}; {e['seconds']:g} s x {e['reps']} runs, "
              "interleaved, median (`--ir`: userspace instructions per I/O from callgrind as well, "
              "`tools/bench/engine-ir.sh`):\n\n"
              "| job | CPU µs/IO stripe x4 | raid10 x4 | mirror x2 | raid10 / stripe | mirror / stripe | target "
              "| instructions/IO stripe / raid10 / mirror |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
        for r in rd["rows"]:
            c, t, ir = r["cpu_us_per_io"], r.get("target"), r.get("instructions_per_io")
            irs = " / ".join("%.0f" % ir[g] if ir.get(g) else "–" for g in ("stripe4", "raid10", "mirror2")) if ir else "–"
            s += (f"\n| {r['job']} | {c['stripe4']:,.2f} | {c['raid10']:,.2f} | {c['mirror2']:,.2f} | "
                  f"{r['ratio']['raid10']:.2f}x | {r['ratio']['mirror2']:.2f}x | "
                  f"{('<= %.2fx ' % t + ('✓' if r['met'] else '✗')) if t else '–'} | {irs} |")
    cz = e.get("compress")
    if cz:
        s += (f"\n\n### Compress on real CPU (host, no ublk)\n\nThe same engine with a compress volume (zstd "
              f"level 1, 64K clusters, {e['nproc']} worker threads by default) against the same volume "
              f"uncompressed, one file each on {e['medium']}, {e['seconds']:g} s x {e['reps']} runs, median; "
              f"read jobs fill the volume first:\n\n"
              "| job | compress MB/s | uncompressed MB/s | ratio | CPU µs per I/O, compress / uncompressed | target |\n"
              "| --- | ---: | ---: | ---: | ---: | --- |")
        for r in cz["rows"]:
            t = r.get("target")
            s += (f"\n| {r['job']} | {r['compress_mb_per_s']:,.0f} | {r['plain_mb_per_s']:,.0f} | {r['ratio']:.2f}x | "
                  f"{r['compress_cpu_us_per_io']:,.1f} / {r['plain_cpu_us_per_io']:,.1f} | "
                  f"{('>= %.1fx ' % t + ('✓' if r['met'] else '✗')) if t else '–'} |")
    return s


def replace(text, name, body):
    pat = re.compile(rf"(<!-- bench:{name} -->\n).*?(\n<!-- /bench:{name} -->)", re.S)
    if not pat.search(text):
        sys.exit(f"readme.py: no <!-- bench:{name} --> ... <!-- /bench:{name} --> in the README")
    return pat.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)


def main():
    args = sys.argv[1:]
    results = "bench-results"
    if "--results" in args:
        i = args.index("--results"); results = args[i + 1]; del args[i:i + 2]
    path = args[0] if args else "README.md"
    load = lambda n: json.load(open(os.path.join(results, n)))
    lts, new = load("latest-lts.json"), load("latest-latest.json")
    eng = load("latest-engine.json") if os.path.exists(os.path.join(results, "latest-engine.json")) else None
    text = open(path).read()
    text = replace(text, "targets", targets(lts, new, eng))
    text = replace(text, "lts", kernel(results, "lts", lts,
                                       f"Linux {lts['machine']['kernel'].split('+')[0]} (Debian trixie, `VMRUN_KERNEL=lts`)"))
    text = replace(text, "latest", kernel(results, "latest", new,
                                          f"Linux {new['machine']['kernel'].split('+')[0]} (trixie-backports, "
                                          "`VMRUN_KERNEL=latest`)"))
    if eng:
        text = replace(text, "engine", engine(eng))
    open(path, "w").write(text)
    print(f"readme.py: {path} refreshed from {results}/latest-*")


if __name__ == "__main__":
    main()
