#!/usr/bin/env python3
"""Turn one kernel's raw fio JSON (tools/bench/guest.sh) into results.json, results.md and
results.png (gnuplot). usage: report.py RUN_DIR [ENGINE_JSON] [--label LABEL] [--cmd CMD]
RUN_DIR holds machine.txt, status-ROW and raw/ROW.SIDE.JOB.REP.json."""
import glob, json, os, re, statistics, subprocess, sys
import zram_report

ROWS = [  # row, ours label, reference label, throughput target (ratio >=): one, or per job
    ("file", "ublk-compose file", "loop (direct-io=on)", 1.0),
    ("stripe4", "ublk-compose stripe x4", "md raid0 x4", 1.10),
    ("raid10", "ublk-compose raid10 x4", "md raid10 n2 x4", 1.10),
    ("mirror2", "ublk-compose mirror x2", "md raid1 x2", 1.10),
    ("compress", "ublk-compose compress, 2:1 data", "ublk-compose file (uncompressed)",
     {"write1m_qd8": 1.0, "randread4k_qd32": 0.5}),
    ("compress_rand", "ublk-compose compress, random data", "ublk-compose file (uncompressed)",
     {"write1m_qd8": 0.5}),
    # the round trip alone: the same ublk path with a layer that completes every request at once
    # (the goal on 6.12, where the round trip caps everything: 4k rows >= 0.95x of it)
    ("null_file", "ublk-compose file", "do-nothing ublk target (ucbench-null)", 0.95),
    ("null_stripe4", "ublk-compose stripe x4", "do-nothing ublk target (ucbench-null)", 0.95),
    # what UBLK_F_BATCH_IO brings (kernels that have it): the same file volume, batch = false
    ("batch_off", "ublk-compose file, BATCH_IO", "ublk-compose file, per-tag commands", None),
    # the same nbdkit export (file plugin, TCP loopback) through our nbd leaf and the kernel's client
    ("nbd", "ublk-compose nbd", "kernel NBD (nbd-client)", 1.0),
    ("mirror_nbd", "ublk-compose mirror file+nbd (nbd write-mostly)", "md raid1 loop+kernel NBD (NBD --write-mostly)", None),
]
# reads through a layer vs the file volume of the same run (goal: >= 0.95x); not interleaved
LAYER_READ_JOBS = ["randread4k_qd32", "randread4k_qd1", "read1m_qd8"]
LAYER_READ_ROWS = ["stripe4", "raid10", "mirror2"]
LAYER_READ_TARGET = 0.95
JOBS = ["randread4k_qd32", "randwrite4k_qd32", "randread4k_qd1", "read1m_qd8", "write1m_qd8", "randrw70_4k_qd32"]
JOB_TITLE = {"randread4k_qd32": "4k randread QD32", "randwrite4k_qd32": "4k randwrite QD32",
             "randread4k_qd1": "4k randread QD1", "read1m_qd8": "1M read QD8", "write1m_qd8": "1M write QD8",
             "randrw70_4k_qd32": "4k randrw 70/30 QD32"}
LEGS = {"file": "the files", "loop": "direct-I/O loop devices of the files, as md's"}
QD1_LAT_TARGET = 1.2
SCALE_TARGET = 1.6


def one(path):
    """Figures of one fio run: IOPS, MB/s (read+write), clat p50/p99 in us of the main direction."""
    try:
        j = json.load(open(path))["jobs"][0]
    except Exception:
        return None
    if j.get("error"):
        return None
    r, w = j["read"], j["write"]
    main = r if r["io_bytes"] >= w["io_bytes"] else w
    pct = main.get("clat_ns", {}).get("percentile", {})
    get = lambda p: next((v / 1000.0 for k, v in pct.items() if abs(float(k) - p) < 1e-6), None)
    out = {"iops": r["iops"] + w["iops"], "mbps": (r["bw_bytes"] + w["bw_bytes"]) / 1e6,
           "p50_us": get(50.0), "p99_us": get(99.0), "cpu_busy": None, "cpu_us_per_io": None}
    # the guest's CPU over the run (guest.sh: busy and total ticks before and after, CLK_TCK)
    try:
        b0, t0, b1, t1, hz = (float(x) for x in open(path + ".cpu").read().split())
        ios = r["total_ios"] + w["total_ios"]
        out["cpu_busy"] = (b1 - b0) / (t1 - t0) if t1 > t0 else None
        out["cpu_us_per_io"] = (b1 - b0) / hz * 1e6 / ios if ios else None
    except (OSError, ValueError, KeyError):
        pass
    return out


def median_of(runs):
    runs = [x for x in runs if x]
    if not runs:
        return None
    out = {"reps": len(runs)}
    for k in ("iops", "mbps", "p50_us", "p99_us", "cpu_busy", "cpu_us_per_io"):
        vals = [x[k] for x in runs if x[k] is not None]
        out[k] = statistics.median(vals) if vals else None
    out["iops_all"] = [round(x["iops"], 1) for x in runs]
    return out


def side(raw, row, s, job):
    return median_of([one(p) for p in sorted(glob.glob(f"{raw}/{row}.{s}.{job}.*.json"))])


def fmt(x, nd=0):
    if x is None:
        return "–"
    return f"{x:,.{nd}f}"


def main():
    args = sys.argv[1:]
    label = cmd = None
    if "--label" in args:
        i = args.index("--label"); label = args[i + 1]; del args[i:i + 2]
    if "--cmd" in args:
        i = args.index("--cmd"); cmd = args[i + 1]; del args[i:i + 2]
    d = args[0]
    engine = json.load(open(args[1])) if len(args) > 1 and os.path.exists(args[1]) else None
    raw = os.path.join(d, "raw")
    if not os.path.isdir(raw) and os.path.exists(os.path.join(d, "raw.tar.xz")):  # a packed run: re-report
        subprocess.run(["tar", "-C", d, "-xJf", os.path.join(d, "raw.tar.xz")], check=True)
    machine = {}
    for line in open(os.path.join(d, "machine.txt")):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            machine[k] = v
    machine["accel"] = "QEMU TCG (no KVM)" if machine.get("hypervisor") != "none" else "bare metal / host"
    # the machine this report is made on (the one that ran QEMU)
    ci = open("/proc/cpuinfo").read()
    machine["host_cpu"] = next((l.split(":", 1)[1].strip() for l in ci.splitlines() if l.startswith("model name")), "?")
    machine["host_nproc"] = os.cpu_count()
    machine["host_kernel"] = os.uname().release
    res = {"label": label, "command": cmd, "machine": machine, "rows": [], "scaling": None, "engine": engine}
    for row, ol, rl, target in ROWS:
        st_path = os.path.join(d, f"status-{row}")
        if not os.path.exists(st_path):
            continue
        status = open(st_path).read().strip()
        for job in JOBS:
            ours = side(raw, row, "ours", job) if status == "ok" else None
            ref = side(raw, row, "ref", job)
            if ours is None and ref is None:
                continue
            e = {"row": row, "job": job, "ours_label": ol, "ref_label": rl, "status": status,
                 "ours": ours, "ref": ref, "ratio": None, "target": None, "met": None}
            if ours and ref and ref["iops"]:
                e["ratio"] = ours["iops"] / ref["iops"]
            t = target.get(job) if isinstance(target, dict) else target
            if t is not None:
                e["target"] = f">= {t:.2f}x"
                e["met"] = None if e["ratio"] is None else e["ratio"] >= t
            if job == "randread4k_qd1" and ours and ref and ref["p50_us"]:
                e["p50_ratio"] = ours["p50_us"] / ref["p50_us"]
                e["p99_ratio"] = ours["p99_us"] / ref["p99_us"] if ref["p99_us"] else None
                if row == "file":
                    e["p50_target"] = f"<= {QD1_LAT_TARGET:.1f}x"
                    e["p50_met"] = e["p50_ratio"] <= QD1_LAT_TARGET
            res["rows"].append(e)
    res["layer_reads"] = []
    # with loop legs the reference is the file volume on a loop device too (the file_legs row)
    file_row = "file_legs" if os.path.exists(os.path.join(d, "status-file_legs")) else "file"
    res["layer_reads_ref"] = file_row
    for job in LAYER_READ_JOBS:
        f = side(raw, file_row, "ours", job)
        for row in LAYER_READ_ROWS:
            o = side(raw, row, "ours", job)
            if f and o and f["iops"]:
                r = o["iops"] / f["iops"]
                res["layer_reads"].append({"row": row, "job": job, "ours_iops": o["iops"], "file_iops": f["iops"],
                                           "ratio": r, "target": f">= {LAYER_READ_TARGET:.2f}x",
                                           "met": r >= LAYER_READ_TARGET})
    q1, q2 = side(raw, "scaling", "q1", "randread4k_qd32"), side(raw, "scaling", "q2", "randread4k_qd32")
    if q1 or q2:
        sc = {"q1": q1, "q2": q2, "ratio": q2["iops"] / q1["iops"] if q1 and q2 else None,
              "target": f">= {SCALE_TARGET}x"}
        sc["met"] = sc["ratio"] is not None and sc["ratio"] >= SCALE_TARGET
        res["scaling"] = sc
    res["zram"] = zram_report.collect(d)
    json.dump(res, open(os.path.join(d, "results.json"), "w"), indent=1)
    md = markdown(res)
    open(os.path.join(d, "results.md"), "w").write(md)
    chart(res, d)
    print(md)


def scaling_cpu(sc):
    q = [sc.get(k) for k in ("q1", "q2")]
    if not all(x and x.get("cpu_us_per_io") for x in q):
        return ""
    return (f" Guest CPU per I/O {q[0]['cpu_us_per_io']:.1f} / {q[1]['cpu_us_per_io']:.1f} µs, "
            f"CPUs busy {q[0]['cpu_busy'] * 100:.0f}% / {q[1]['cpu_busy'] * 100:.0f}% (1 / 2 queues): a second "
            f"queue helps only where one leaves CPU idle.")


def met(v):
    return "–" if v is None else ("met" if v else "**not met**")


def markdown(res):
    m = res["machine"]
    L = []
    L.append(f"**Kernel {m.get('kernel')}** — {m.get('accel')} on a {m.get('host_nproc')}-CPU {m.get('host_cpu')} host "
             f"(Linux {m.get('host_kernel')}); guest {m.get('nproc')} vCPU ({m.get('cpu')}), "
             f"{m.get('mem_mb')} MB; backing files on {m.get('medium')}; our RAID legs: {LEGS.get(m.get('our_legs'), 'the files')}; {m.get('fio')}; {m.get('ublk_compose', '')}; "
             f"ublk queues={m.get('queues')}, fio numjobs={m.get('numjobs')}, {m.get('runtime')} s x {m.get('reps')} reps (median); loop dio={m.get('loop_dio', '?')}; {m.get('date')}")
    if res.get("command"):
        L.append("")
        L.append(f"Command: `{res['command']}`")
    L.append("")
    L.append("Medians of the repetitions; IOPS and MB/s are read+write; p50/p99 = completion latency (µs) "
             "of the main direction. Ratio = ours / reference IOPS (higher is better).")
    L.append("")
    L.append("| volume | job | ours IOPS | ours MB/s | ours p50/p99 µs | reference | ref IOPS | ref MB/s | ref p50/p99 µs | ratio | target | |")
    L.append("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |")
    for e in res["rows"]:
        o, r = e["ours"], e["ref"]
        oi = fmt(o["iops"]) if o else e["status"]
        lat = lambda x: f"{fmt(x['p50_us'], 1)} / {fmt(x['p99_us'], 1)}" if x else "–"
        L.append(f"| {e['ours_label']} | {JOB_TITLE[e['job']]} | {oi} | {fmt(o['mbps'], 1) if o else '–'} | {lat(o)} | "
                 f"{e['ref_label']} | {fmt(r['iops']) if r else '–'} | {fmt(r['mbps'], 1) if r else '–'} | {lat(r)} | "
                 f"{fmt(e['ratio'], 2) + 'x' if e['ratio'] else '–'} | {e['target'] or '–'} | {met(e['met'])} |")
        if "p50_target" in e:
            L.append(f"| {e['ours_label']} | 4k QD1 p50 latency | | | {fmt(o['p50_us'], 1)} | {e['ref_label']} | | | "
                     f"{fmt(r['p50_us'], 1)} | {fmt(e['p50_ratio'], 2)}x | {e['p50_target']} | {met(e['p50_met'])} |")
    cpu_rows = [e for e in res["rows"] if any(x and x.get("cpu_us_per_io") for x in (e["ours"], e["ref"]))]
    if cpu_rows:
        L.append("")
        L.append("Guest CPU per I/O: busy CPU time of both vCPUs over a run (fio's start included) / I/Os, "
                 "and in parentheses the share of the CPUs busy; medians. Where both sides keep the CPUs "
                 "busy, IOPS are bound by what each I/O costs in CPU.")
        L.append("")
        L.append("| volume | job | ours µs/IO (busy) | reference | ref µs/IO (busy) |")
        L.append("| --- | --- | ---: | --- | ---: |")
        cpu = lambda x: (f"{fmt(x['cpu_us_per_io'], 1)} ({x['cpu_busy'] * 100:.0f}%)"
                         if x and x.get("cpu_us_per_io") and x.get("cpu_busy") is not None else "–")
        for e in cpu_rows:
            L.append(f"| {e['ours_label']} | {JOB_TITLE[e['job']]} | {cpu(e['ours'])} | {e['ref_label']} | {cpu(e['ref'])} |")
    if res.get("layer_reads"):
        L.append("")
        on = (" on a direct-I/O loop device of its file, as the layers' legs"
              if res.get("layer_reads_ref") == "file_legs" else "")
        L.append(f"Reads through a layer vs the file volume{on} of this run (ours / ours; the devices ran one "
                 "after the other, not interleaved):")
        L.append("")
        L.append("| volume | job | IOPS | file IOPS | ratio | target | |")
        L.append("| --- | --- | ---: | ---: | ---: | --- | --- |")
        label = {r[0]: r[1] for r in ROWS}
        for e in res["layer_reads"]:
            L.append(f"| {label[e['row']]} | {JOB_TITLE[e['job']]} | {fmt(e['ours_iops'])} | {fmt(e['file_iops'])} | "
                     f"{fmt(e['ratio'], 2)}x | {e['target']} | {met(e['met'])} |")
    sc = res.get("scaling")
    if sc:
        L.append("")
        L.append(f"Queue scaling (single-file volume, 4k randread QD32, numjobs=2): 1 queue "
                 f"{fmt(sc['q1']['iops'] if sc['q1'] else None)} IOPS, 2 queues "
                 f"{fmt(sc['q2']['iops'] if sc['q2'] else None)} IOPS → **{fmt(sc['ratio'], 2)}x** "
                 f"(target {sc['target']}: {met(sc['met'])})." + scaling_cpu(sc))
    en = res.get("engine")
    if en:
        L.append("")
        L.append(f"Host-side engine (no ublk; {en['kernel']}, {en['nproc']} CPU {en['cpu']}, files on {en['medium']}): "
                 f"4k randread QD32 through stripe x4: **{en['ours_cpu_us_per_io']:.2f} µs CPU/IO** "
                 f"({en['ours_iops']:,.0f} IOPS) vs fio direct on the 4 files **{en['fio_cpu_us_per_io']:.2f} µs/IO** "
                 f"({en['fio_iops']:,.0f} IOPS) → **{en['ratio']:.2f}x** (target {en['target']}: {met(en['met'])}). "
                 f"Both as getrusage of the whole process incl. io-wq workers; fio's own usr+sys figure "
                 f"(job thread only) is {en['fio_cpu_us_per_io_fio_reported']:.2f} µs/IO.")
        rd = en.get("raid")
        if rd:
            L.append("")
            L.append(f"Host-side RAID (real CPU, no ublk): {rd['what']}.")
            L.append("")
            L.append("| job | CPU µs/IO stripe x4 | raid10 x4 | mirror x2 | raid10 / stripe | mirror / stripe | target | |")
            L.append("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
            for r in rd["rows"]:
                c, t = r["cpu_us_per_io"], r.get("target")
                L.append(f"| {r['job']} | {c['stripe4']:,.2f} | {c['raid10']:,.2f} | {c['mirror2']:,.2f} | "
                         f"{r['ratio']['raid10']:.2f}x | {r['ratio']['mirror2']:.2f}x | "
                         f"{'<= %.2fx' % t if t else '–'} | {met(r['met']) if t else '–'} |")
        cz = en.get("compress")
        if cz:
            L.append("")
            L.append(f"Host-side compress (real CPU, no ublk): {cz['what']}.")
            L.append("")
            L.append("| job | compress MB/s | uncompressed MB/s | ratio | CPU µs/IO compress / uncompressed | target | |")
            L.append("| --- | ---: | ---: | ---: | ---: | --- | --- |")
            for r in cz["rows"]:
                t = r.get("target")
                L.append(f"| {r['job']} | {r['compress_mb_per_s']:,.0f} | {r['plain_mb_per_s']:,.0f} | "
                         f"{r['ratio']:.2f}x | {r['compress_cpu_us_per_io']:,.1f} / {r['plain_cpu_us_per_io']:,.1f} | "
                         f"{'>= %.1fx' % t if t else '–'} | {met(r['met']) if t else '–'} |")
    if res.get("zram"):
        L.append(zram_report.markdown(res["zram"]).rstrip("\n"))
    return "\n".join(L) + "\n"


def chart(res, d):
    rows = [r for r in ROWS if any(e["row"] == r[0] for e in res["rows"])]
    if not rows:
        return
    gp = []
    out_png = os.path.join(d, "results.png")
    h = 330 * len(rows)
    gp.append(f"set terminal pngcairo size 1400,{h} font ',10' noenhanced" if has_cairo() else
              f"set terminal png size 1400,{h} noenhanced")
    gp.append(f"set output '{out_png}'")
    gp.append(f"set multiplot layout {len(rows)},1 title 'ublk-compose vs kernel, {res['machine'].get('kernel')} "
              f"({res['machine'].get('accel')}, {res['machine'].get('nproc')} vCPU), IOPS (log scale), ratio = ours/ref'")
    gp += ["set style data histogram", "set style histogram clustered gap 1", "set style fill solid 0.85 border -1",
           "set boxwidth 0.9", "set logscale y", "set grid ytics", "set key top left horizontal", "set ylabel 'IOPS'",
           "set xtics nomirror", "set yrange [*:*]"]
    for row, ol, rl, _ in rows:
        dat = os.path.join(d, f".chart-{row}.dat")
        ymax = 1
        with open(dat, "w") as fh:
            for e in res["rows"]:
                if e["row"] != row:
                    continue
                o = e["ours"]["iops"] if e["ours"] else 1  # below the y range: no bar
                r = e["ref"]["iops"] if e["ref"] else 1
                lab = f"{e['ratio']:.2f}x" if e["ratio"] else "n/a"
                ymax = max(ymax, o, r)
                fh.write(f"\"{JOB_TITLE[e['job']]}\" {o} {r} \"{lab}\"\n")
        status = next(e["status"] for e in res["rows"] if e["row"] == row)
        t = f"{ol} vs {rl}" + ("" if status == "ok" else f"  [{ol}: {status}]")
        gp.append(f"set title '{t}'")
        gp.append(f"set yrange [10:{ymax * 15}]")
        gp.append(f"plot '{dat}' using 2:xtic(1) title '{ol}' lc rgb '#1f77b4', "
                  f"'' using 3 title '{rl}' lc rgb '#ff7f0e', "
                  f"'' using 0:(($2>$3?$2:$3)*1.6):4 with labels notitle")
    gp.append("unset multiplot")
    script = os.path.join(d, ".chart.gp")
    open(script, "w").write("\n".join(gp) + "\n")
    p = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"report: gnuplot failed: {p.stderr[:500]}", file=sys.stderr)
    for f in glob.glob(os.path.join(d, ".chart*")):
        os.unlink(f)


def has_cairo():
    p = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    return "pngcairo" in (p.stdout + p.stderr)


if __name__ == "__main__":
    main()
