#!/usr/bin/env python3
"""The compress vs zram rows (tools/bench/zram.sh) of one run: collect(RUN_DIR) gives a dict for
results.json ("zram"), markdown() its table for results.md, target_rows() its lines in README's
targets table (readme.py). Alone: zram_report.py RUN_DIR prints the table."""
import glob, json, os, re, statistics, sys

# job, title, measure, target ratio (ours / zram, higher is better)
JOBS = [("write1m", "1M sequential write QD8 (the tar)", "mbps", 1.5),
        ("read1m", "1M sequential read QD8", "mbps", 1.0),
        ("randwrite4k", "4k random write QD32 (the tar's blocks)", "iops", 1.0),
        ("randread4k", "4k random read QD32", "iops", 1.0)]
SHORT = {"write1m": "1M write", "read1m": "1M read", "randwrite4k": "4k rw QD32", "randread4k": "4k rr QD32",
         "space": "space used", "untar": "ext4 untar+sync", "readback": "ext4 read back"}


def one(path):
    try:
        j = json.load(open(path))["jobs"][0]
    except Exception:
        return None
    r, w = j["read"], j["write"]
    main = r if r["io_bytes"] >= w["io_bytes"] else w
    pct = main.get("clat_ns", {}).get("percentile", {})
    get = lambda p: next((v / 1000.0 for k, v in pct.items() if abs(float(k) - p) < 1e-6), None)
    return {"iops": r["iops"] + w["iops"], "mbps": (r["bw_bytes"] + w["bw_bytes"]) / 1e6,
            "p50_us": get(50.0), "p99_us": get(99.0)}


def med(runs, k):
    v = [x[k] for x in runs if x and x.get(k) is not None]
    return statistics.median(v) if v else None


def collect(d):
    st = os.path.join(d, "status-zram")
    if not os.path.exists(st):
        return None
    z = {"status": open(st).read().strip(), "info": {}, "rows": []}
    info = os.path.join(d, "zram-info.txt")
    if os.path.exists(info):
        for line in open(info):
            line = line.rstrip("\n")
            if line.startswith("compress:"):
                # runs before 2026-12-05 wrote the volume's first config line here
                m = re.search(r'level = (\d+); cluster = "([^"]+)"', line)
                z["info"]["compress"] = f"zstd level {m[1]}, cluster {m[2]}" if m else line[9:].strip()
            elif line.startswith("zram_algorithm=") and " zram_level=" in line:
                # ... and both zram facts on one line, with every algorithm the kernel offers
                alg, lvl = line[15:].split(" zram_level=", 1)
                m = re.search(r"\[(\w+)\]", alg)
                z["info"]["zram_algorithm"] = m[1] if m else alg.strip()
                z["info"]["zram_level"] = lvl
            elif "=" in line:
                k, v = line.split("=", 1)
                z["info"][k] = v

    def row(job, title, unit, ours, ref, target, lower_better=False, **more):
        ratio = None
        if ours is not None and ref:
            ratio = (ref / ours if ours else None) if lower_better else ours / ref
        z["rows"].append(dict(job=job, title=title, unit=unit, ours=ours, ref=ref, ratio=ratio, target=target,
                              met=None if ratio is None else ratio >= target, **more))

    raw = os.path.join(d, "raw")
    for job, title, k, target in JOBS:
        runs = {s: [one(p) for p in sorted(glob.glob(f"{raw}/zram.{s}.{job}.*.json"))]
                for s in ("ours", "ref", "file")}
        if not runs["ours"] and not runs["ref"]:
            continue
        row(job, title, "MB/s" if k == "mbps" else "IOPS", med(runs["ours"], k), med(runs["ref"], k), target,
            ours_all=[round(x[k], 1) for x in runs["ours"] if x], ref_all=[round(x[k], 1) for x in runs["ref"] if x],
            ours_p50_us=med(runs["ours"], "p50_us"), ref_p50_us=med(runs["ref"], "p50_us"),
            file=med(runs["file"], k), file_all=[round(x[k], 1) for x in runs["file"] if x])
    sp = os.path.join(d, "zram-space.json")
    if os.path.exists(sp):
        s = json.load(open(sp))
        row("space", "space used after writing the tar (compress physical_bytes, zram mem_used_total)", "MiB",
            s["ours"]["bytes"] / 2**20, s["ref"]["bytes"] / 2**20, 1.0, lower_better=True,
            stored=s["ref"]["stored"])
    e4 = os.path.join(d, "zram-ext4.json")
    if os.path.exists(e4):
        e = json.load(open(e4))
        what = f"{e['files']:,} files, {e['tar_bytes'] / 2**20:.0f} MiB"
        for k, job, title in (("untar_sync_s", "untar", f"ext4: untar a tree ({what}), sync"),
                              ("read_back_s", "readback", "ext4: read every file back (caches dropped)")):
            row(job, title, "s", med(e["ours"], k), med(e["ref"], k), 1.0, lower_better=True,
                ours_all=[round(x[k], 2) for x in e["ours"]], ref_all=[round(x[k], 2) for x in e["ref"]])
    return z


def fmt(x, nd=0):
    return "–" if x is None else f"{x:,.{nd}f}"


def markdown(z):
    i = z.get("info", {})
    L = ["", "#### compress vs zram (same data, same VM run)", ""]
    if z["status"] != "ok":
        L.append(f"Not measured: {z['status']}.")
        return "\n".join(L) + "\n"
    tb, zb = int(i.get("tar_bytes", 0)), int(i.get("tar_zstd1_bytes", 0) or 0)
    L.append(f"Data: {tb / 2**20:.0f} MiB of a tar of /usr (usr/lib, usr/share/doc, usr/share/man), built in the "
             f"guest; `zstd -1` makes {tb / zb if zb else 0:.2f}:1 of it. zram: {i.get('zram_algorithm', '?')}, "
             f"level {i.get('zram_level', '?')}. compress: {i.get('compress', '?')} over a file on the guest's "
             f"tmpfs. Writes carry the tar's own bytes (czload); both devices read back identical to the tar "
             f"after the write jobs ({'checked' if i.get('verified') == 'yes' else 'NOT checked'}); the ext4 "
             f"files are compared with their source. Ratio: compress / zram for throughput, zram / compress for "
             f"space and time (higher is better for compress).")
    L.append("")
    L.append("| job | compress | zram | unit | ratio | target | | uncompressed file volume |")
    L.append("| --- | ---: | ---: | --- | ---: | --- | --- | ---: |")
    for r in z["rows"]:
        nd = 2 if r["unit"] == "s" else 1 if r["unit"] in ("MB/s", "MiB") else 0
        fv = r.get("file")
        fcell = f"{fmt(fv)} ({fv / r['ref']:.2f}x zram)" if fv and r["ref"] else "–"
        L.append(f"| {r['title']} | {fmt(r['ours'], nd)} | {fmt(r['ref'], nd)} | {r['unit']} | "
                 f"{fmt(r['ratio'], 2) + 'x' if r['ratio'] else '–'} | >= {r['target']:.1f}x | "
                 f"{'–' if r['met'] is None else 'met' if r['met'] else '**not met**'} | {fcell} |")
    L.append("")
    L.append("Last column: the same 4k jobs on an uncompressed ublk-compose `file` volume holding the tar on "
             "the same tmpfs, in the same run: what the ublk round trip alone allows any volume here.")
    return "\n".join(L) + "\n"


def cell(z, job):
    r = next((r for r in (z or {}).get("rows", []) if r["job"] == job), None)
    if not r or r["ratio"] is None:
        return None if not z else "n/a"
    return f"{r['ratio']:.2f}x " + ("✓" if r["met"] else "✗")


def target_rows(lts, new):
    a, b = (lts or {}).get("zram"), (new or {}).get("zram")
    out = []
    for job, name in SHORT.items():
        ca, cb = cell(a, job), cell(b, job)
        if ca is None and cb is None:
            continue
        t = next((r["target"] for z in (a, b) if z for r in z["rows"] if r["job"] == job), None)
        if t is None:
            continue  # the row failed on both kernels: its status says why, under each kernel's table
        out.append(f"| compress vs zram, {name} | >= {t:.1f}x | {ca or '–'} | {cb or '–'} |")
    return out


if __name__ == "__main__":
    z = collect(sys.argv[1])
    print(markdown(z) if z else "no zram rows here")
