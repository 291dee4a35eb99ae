#!/usr/bin/env python3
"""Host-side engine benchmark (no ublk driver): CPU time per I/O of the ublk-compose engine
(tools/bench/engine-bench, a stripe x4 / 64K graph) against fio issuing the same 4k random reads
directly on the 4 files (io_uring, direct=1, one job, QD32 over the 4 files).

Both sides are measured the same way: getrusage(RUSAGE_CHILDREN) user+sys around the process
(this includes io_uring's io-wq worker threads, which fio's own usr_cpu/sys_cpu leave out) divided
by completed I/Os. fio's self-reported figure and engine-bench's in-loop figure are kept as well.

Second part, RAID: CPU time per I/O of the same engine through raid10 x4 (a 64K stripe over two 2-way
mirrors) and mirror x2 against the stripe x4, 4k random and 1M sequential reads and writes, all three
graphs over the same 4 files, interleaved; the target is reads through a mirror costing what they cost
through the stripe (<= 1.05x). With --ir also the userspace instructions per I/O (callgrind, exact
and repeatable on a busy machine: tools/bench/engine-ir.sh).

Third part, compress: the same engine (real CPU, no TCG) with a compress volume (zstd level 1,
64K clusters, worker threads) against the same volume without compression, both over one file on
the same medium: throughput (MB/s) of 1M sequential writes of 2:1 and of random data, 1M
sequential reads, 4k random reads and 4k random writes of 2:1 data (read jobs and the random
writes first fill the volume). This shows what the layer costs on a real CPU, apart from the
guest's emulation.

usage: engine.py ENGINE_BIN OUT.json [--seconds S] [--reps N] [--dir D] [--leg-mb MB] [--no-compress] [--no-raid] [--ir]
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, time


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_measured(cmd):
    c0 = cpu_children()
    p = subprocess.run(cmd, capture_output=True, text=True)
    c1 = cpu_children()
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed rc={p.returncode}: {p.stderr[:400]}")
    return p.stdout, c1 - c0


def direct_ok(d):
    try:
        fd = os.open(os.path.join(d, ".odirect-probe"), os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
        os.close(fd)
        return True
    except OSError:
        return False
    finally:
        try:
            os.unlink(os.path.join(d, ".odirect-probe"))
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine")
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default="/dev/shm/ucbench-engine")
    ap.add_argument("--leg-mb", type=int, default=128)
    ap.add_argument("--no-compress", action="store_true")
    ap.add_argument("--no-raid", action="store_true")
    ap.add_argument("--ir", action="store_true", help="RAID rows: userspace instructions per I/O (valgrind)")
    a = ap.parse_args()

    d = a.dir
    os.makedirs(d, exist_ok=True)
    if not direct_ok(d):
        d = "/var/tmp/ucbench-engine"
        os.makedirs(d, exist_ok=True)
    files = [os.path.join(d, f"d{i}.img") for i in range(4)]
    for f in files:  # written in full: reads hit allocated data on both sides
        subprocess.run(["dd", "if=/dev/urandom", f"of={f}", "bs=1M", f"count={a.leg_mb}", "status=none"], check=True)
    conf = os.path.join(d, "stripe4.conf")
    with open(conf, "w") as fh:
        fh.write('device = { depth = 32; block_size = 4096; };\n'
                 'volume = { type = "stripe"; chunk = "64K"; children = (\n' +
                 ",\n".join(f'  {{ type = "file"; path = "d{i}.img"; }}' for i in range(4)) + "\n); };\n")
    fio_cmd = ["fio", "--name=direct4", "--filename=" + ":".join(files), "--ioengine=io_uring", "--direct=1",
               "--rw=randread", "--bs=4k", "--iodepth=32", "--file_service_type=random", "--norandommap",
               "--randrepeat=0", "--time_based", f"--runtime={a.seconds:g}", "--output-format=json"]
    eng, fio = [], []
    for rep in range(a.reps):  # interleaved
        out, cpu = run_measured([a.engine, conf, f"{a.seconds:g}", "32", "4096"])
        e = json.loads(out)
        e["cpu_us_per_io_rusage"] = cpu * 1e6 / e["ios"]
        eng.append(e)
        out, cpu = run_measured(fio_cmd)
        j = json.loads(out)["jobs"][0]
        ios = j["read"]["total_ios"]
        rt = j["job_runtime"] / 1000.0
        fio.append({"ios": ios, "iops": ios / rt, "seconds": rt,
                    "cpu_us_per_io_rusage": cpu * 1e6 / ios,
                    "cpu_us_per_io_fio_reported": (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * rt * 1e6 / ios})
        print(f"engine rep {rep + 1}: ours {eng[-1]['cpu_us_per_io_rusage']:.3f} us/IO "
              f"({eng[-1]['iops']:.0f} IOPS), fio {fio[-1]['cpu_us_per_io_rusage']:.3f} us/IO "
              f"({fio[-1]['iops']:.0f} IOPS)", file=sys.stderr)
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    ours = med(eng, "cpu_us_per_io_rusage")
    ref = med(fio, "cpu_us_per_io_rusage")
    cpuinfo = open("/proc/cpuinfo").read()
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")), "?")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    git = lambda *args: subprocess.run(["git", "-C", repo] + list(args), capture_output=True, text=True)
    build = os.environ.get("BUILD_INFO") or (
        "head=" + git("rev-parse", "--short", "HEAD").stdout.strip() +
        ("" if git("diff", "--quiet", "HEAD", "--", "src", "layers").returncode == 0 else
         " (src/ or layers/ had uncommitted changes)"))
    res = {
        "build": build,
        "what": "4k random read, QD32, stripe x4 (64K) over 4 files; engine without ublk vs fio direct on the files",
        "medium": d, "seconds": a.seconds, "reps": a.reps,
        "kernel": platform.release(), "nproc": os.cpu_count(), "cpu": model,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ours_cpu_us_per_io": ours, "fio_cpu_us_per_io": ref, "ratio": ours / ref,
        "ours_iops": med(eng, "iops"), "fio_iops": med(fio, "iops"),
        "ours_cpu_us_per_io_inloop": med(eng, "cpu_us_per_io"),
        "fio_cpu_us_per_io_fio_reported": med(fio, "cpu_us_per_io_fio_reported"),
        "target": "<= 1.2", "met": ours / ref <= 1.2,
        "runs": {"ours": eng, "fio": fio},
    }
    for f in files + [conf]:
        os.unlink(f)
    print(f"engine: ours {ours:.3f} us/IO, fio {ref:.3f} us/IO, ratio {ours / ref:.2f}", file=sys.stderr)
    if not a.no_raid:
        res["raid"] = raid_rows(a, d)
    if not a.no_compress:
        res["compress"] = compress_rows(a, d)
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)


# (name, mode, block size, queue depth, target ratio to the stripe or None)
RAID_JOBS = [("4k randread QD32", "randread", 4096, 32, 1.05), ("4k randwrite QD32", "randwrite", 4096, 32, None),
             ("1M read QD8", "read", 1 << 20, 8, 1.05), ("1M write QD8", "write", 1 << 20, 8, None)]
RAID_GRAPHS = ["stripe4", "raid10", "mirror2"]


def raid_confs(a, d):
    """stripe x4, raid10 x4 and mirror x2 configs over the same 4 files (written in full). The same
    files for all: on this kind of machine CPU per I/O depends on where a file's pages happen to
    sit (a fresh copy of a file read 1.5x slower than the file it was copied from)."""
    leg = lambda f: f'{{ type = "file"; path = "{f}"; }}'
    mirror = lambda x, y: f'{{ type = "mirror"; assume_clean = true; children = ( {leg(x)}, {leg(y)} ); }}'
    dev = 'device = { depth = 32; max_io = "1M"; block_size = 4096; };\n'
    files = [f"raid-{i}.img" for i in range(4)]
    texts = {
        "stripe4": dev + 'volume = { type = "stripe"; chunk = "64K"; children = ( ' +
                   ", ".join(leg(f) for f in files) + " ); };\n",
        "raid10": dev + 'volume = { type = "stripe"; chunk = "64K"; children = ( ' +
                  mirror(*files[:2]) + ", " + mirror(*files[2:]) + " ); };\n",
        "mirror2": dev + "volume = " + mirror(*files[:2]) + ";\n",
    }
    for f in files:
        subprocess.run(["dd", "if=/dev/urandom", "of=" + os.path.join(d, f), "bs=1M", f"count={a.leg_mb}",
                        "status=none"], check=True)
    paths = {}
    for g in RAID_GRAPHS:
        paths[g] = os.path.join(d, f"raid-{g}.conf")
        with open(paths[g], "w") as fh:
            fh.write(texts[g])
    return paths, [os.path.join(d, f) for f in files]


def raid_wipe(imgs):
    """Before a mirror graph: no superblock on any file (the stripe wrote over some), so every
    mirror starts as a new array (assume_clean: no resync during the run)."""
    for f in imgs:
        with open(f, "r+b") as fh:
            fh.write(bytes(4096))


def instructions(a, conf, mode, bs, depth):
    """Userspace instructions per I/O of a fixed number of requests (callgrind), or None."""
    n = 20000 if bs <= 4096 else 2000
    out = os.path.join(a.dir, "callgrind.out")
    p = subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=measured_run", "--callgrind-out-file=" + out,
                        a.engine, conf, f"{n}ios", str(depth), str(bs), mode], capture_output=True, text=True)
    if os.path.exists(out):
        os.unlink(out)
    m = [l for l in p.stderr.splitlines() if "Collected :" in l]
    return int(m[-1].split(":")[-1]) / n if p.returncode == 0 and m else None


def raid_rows(a, d):
    paths, imgs = raid_confs(a, d)
    rows = []
    for name, mode, bs, depth, target in RAID_JOBS:
        runs = {g: [] for g in RAID_GRAPHS}
        for rep in range(a.reps):  # interleaved
            for g in RAID_GRAPHS:
                if g != "stripe4":
                    raid_wipe(imgs)
                out, cpu = run_measured([a.engine, paths[g], f"{a.seconds:g}", str(depth), str(bs), mode])
                e = json.loads(out)
                e["cpu_us_per_io_rusage"] = cpu * 1e6 / max(e["ios"], 1)
                runs[g].append(e)
        med = lambda g, k: statistics.median(x[k] for x in runs[g])
        cpu = {g: med(g, "cpu_us_per_io_rusage") for g in RAID_GRAPHS}
        row = {"job": name, "mode": mode, "bs": bs, "depth": depth, "target": target,
               "cpu_us_per_io": cpu, "iops": {g: med(g, "iops") for g in RAID_GRAPHS},
               "ratio": {g: cpu[g] / cpu["stripe4"] for g in ("raid10", "mirror2")}, "runs": runs}
        row["met"] = None if target is None else all(v <= target for v in row["ratio"].values())
        if a.ir:
            row["instructions_per_io"] = {}
            for g in RAID_GRAPHS:
                if g != "stripe4":
                    raid_wipe(imgs)
                row["instructions_per_io"][g] = instructions(a, paths[g], mode, bs, depth)
        rows.append(row)
        print(f"engine raid {name}: CPU us/IO stripe x4 {cpu['stripe4']:.2f}, raid10 x4 {cpu['raid10']:.2f} "
              f"({row['ratio']['raid10']:.2f}x), mirror x2 {cpu['mirror2']:.2f} ({row['ratio']['mirror2']:.2f}x)"
              + (f"; instructions/IO {row['instructions_per_io']}" if a.ir else ""), file=sys.stderr)
    for f in imgs + list(paths.values()):
        os.unlink(f)
    return {"what": "CPU time per I/O (getrusage, incl. io-wq) through raid10 x4 (64K stripe over two 2-way "
                    "mirrors) and mirror x2 vs stripe x4 (64K), engine without ublk, all three over the same 4 files "
                    "on " + d, "rows": rows}


# (name, mode, block size, queue depth, data, target ratio or None): the compress jobs
CZ_JOBS = [("1M write, 2:1 data", "write", 1 << 20, 8, "half", 1.0),
           ("1M write, random data", "write", 1 << 20, 8, "random", 0.5),
           ("1M read, 2:1 data", "read", 1 << 20, 8, "half", None),
           ("4k randread QD32, 2:1 data", "randread", 4096, 32, "half", 0.5),
           # into a volume filled first (as one in use): each write lands in a stored cluster
           ("4k randwrite QD32, 2:1 data", "randwrite", 4096, 32, "half", None)]


def compress_rows(a, d):
    dev = 'device = { depth = 32; max_io = "1M"; block_size = 4096; };\n'
    confs = {
        "plain": dev + 'volume = { type = "file"; path = "cz-plain.img"; size = "256M"; };\n',
        "compress": dev + 'volume = { type = "compress"; level = 1; cluster = "64K"; size = "256M"; '
                          'children = ( { type = "file"; path = "cz.img"; size = "288M"; } ); };\n',
    }
    paths = {}
    for k, text in confs.items():
        paths[k] = os.path.join(d, f"cz-{k}.conf")
        with open(paths[k], "w") as fh:
            fh.write(text)
    imgs = [os.path.join(d, "cz-plain.img"), os.path.join(d, "cz.img")]
    rows = []
    for name, mode, bs, depth, data, target in CZ_JOBS:
        runs = {"plain": [], "compress": []}
        for rep in range(a.reps):
            for side in ("compress", "plain"):
                for f in imgs:  # a fresh volume each run
                    if os.path.exists(f):
                        os.unlink(f)
                out, cpu = run_measured([a.engine, paths[side], f"{a.seconds:g}", str(depth), str(bs), mode, data])
                e = json.loads(out)
                e["cpu_us_per_io_rusage"] = cpu * 1e6 / max(e["ios"], 1)
                runs[side].append(e)
        med = lambda side, k: statistics.median(x[k] for x in runs[side])
        ours, ref = med("compress", "mb_per_s"), med("plain", "mb_per_s")
        row = {"job": name, "mode": mode, "bs": bs, "depth": depth, "data": data,
               "compress_mb_per_s": ours, "plain_mb_per_s": ref, "ratio": ours / ref,
               "compress_cpu_us_per_io": med("compress", "cpu_us_per_io_rusage"),
               "plain_cpu_us_per_io": med("plain", "cpu_us_per_io_rusage"),
               "target": target, "met": None if target is None else ours / ref >= target, "runs": runs}
        rows.append(row)
        print(f"engine compress {name}: {ours:.0f} MB/s vs {ref:.0f} MB/s uncompressed, {ours / ref:.2f}x",
              file=sys.stderr)
    for f in imgs + list(paths.values()):
        if os.path.exists(f):
            os.unlink(f)
    return {"what": "compress (zstd 1, 64K clusters, default workers) vs the same volume uncompressed, "
                    "one file each on " + d + ", engine without ublk, real CPU", "rows": rows}


if __name__ == "__main__":
    main()
