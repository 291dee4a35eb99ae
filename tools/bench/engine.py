#!/usr/bin/env python3
"""Host-side engine benchmark (no ublk driver): CPU time per I/O of the ublk-compose engine
(tools/bench/engine-bench, a stripe x4 / 64K graph) against fio issuing the same 4k random reads
directly on the 4 files (io_uring, direct=1, one job, QD32 over the 4 files).

Both sides are measured the same way: getrusage(RUSAGE_CHILDREN) user+sys around the process
(this includes io_uring's io-wq worker threads, which fio's own usr_cpu/sys_cpu leave out) divided
by completed I/Os. fio's self-reported figure and engine-bench's in-loop figure are kept as well.

usage: engine.py ENGINE_BIN OUT.json [--seconds S] [--reps N] [--dir D] [--leg-mb MB]
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
    res = {
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
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    for f in files + [conf]:
        os.unlink(f)
    print(f"engine: ours {ours:.3f} us/IO, fio {ref:.3f} us/IO, ratio {ours / ref:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
