#!/usr/bin/env python3
"""bizpulse render benchmark (issue 6, DESIGN §8), everything measured in the same run:

- bizpulse's chart (bp_chart_png in process) of 1 440 and 10 080 points at 1200x600;
- the floor: a bare cairo program drawing the same picture, written with cairo's PNG writer;
- the original: matplotlib's picture (12x6 in at dpi 100);
- cold start to first PNG bytes (process start -> PNG file written, wall time) and peak RSS;
- charts per second with all threads (bizpulse, in process).

Prints a table; never fails on a figure. usage: run.py BUILD_DIR [--quick]"""
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where python3-matplotlib lives


def write_csv(path, n):
    """n minutes: a daily rhythm, noise, a few anomalies (the demo's shape)."""
    t0 = 1795615500 - n * 60
    with open(path, "w") as f:
        f.write("timestamp,value,anomaly\n")
        for i in range(n):
            v = 100 + 30 * math.sin(i * 2 * math.pi / 1440) + (i * 7919 % 13)
            anomaly = 1 if i % 997 == 500 else 0
            if anomaly:
                v *= 0.6
            f.write(f"{t0 + i * 60},{v:.3f},{anomaly}\n")


def run(cmd):
    """(stdout, wall seconds) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {err.decode(errors='replace')[-2000:]}")
    return out.decode(), wall


def cold(cmd, out_png, runs):
    """Median wall time from spawn to exit with the PNG written, peak RSS (MB), and the median
    CPU time (user + system) of the process: on a shared machine the wall time also counts the
    time other processes held the cores."""
    walls, cpus, rss = [], [], 0
    for _ in range(runs):
        if os.path.exists(out_png):
            os.unlink(out_png)
        t0 = time.perf_counter()
        pid = os.posix_spawn(cmd[0], cmd, os.environ,
                             file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
        _, status, usage = os.wait4(pid, 0)
        walls.append(time.perf_counter() - t0)
        cpus.append(usage.ru_utime + usage.ru_stime)
        if status != 0 or not os.path.exists(out_png):
            raise SystemExit(f"{cmd} failed (status {status})")
        rss = max(rss, usage.ru_maxrss / 1024)
    return statistics.median(walls) * 1000, rss, statistics.median(cpus) * 1000


def compile_c(build, work):
    cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "cairo", "fontconfig", "zlib"],
                            capture_output=True, text=True, check=True).stdout.split()
    floor = os.path.join(work, "floor")
    subprocess.run(["cc", "-O2", "-o", floor, os.path.join(HERE, "floor.c")] + cflags + ["-lm"], check=True)
    bench = os.path.join(work, "bench_chart")
    render = os.path.join(ROOT, "functions", "render")
    srcs = [os.path.join(render, f) for f in ("chart.c", "utf8.c", "tz.c", "timeaxis.c", "text.c", "pngenc.c", "raster.c")]
    srcs += [os.path.join(ROOT, "shared", f) for f in ("buf.c", "err.c")]
    subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I", render, "-I", os.path.join(ROOT, "shared"),
                    "-o", bench, os.path.join(HERE, "bench_chart.c")] + srcs + cflags + ["-lm", "-lpthread"],
                   check=True)
    return floor, bench


def main():
    build = sys.argv[1]
    quick = "--quick" in sys.argv
    work = tempfile.mkdtemp(prefix="bp-bench-render.")
    floor, bench = compile_c(build, work)
    cli = os.path.join(build, "functions", "render", "bizpulse-render")
    have_mpl = subprocess.run([SYSTEM_PYTHON, "-c", "import matplotlib"], capture_output=True).returncode == 0
    iters, floor_iters, mpl_iters, runs, rounds = (20, 3, 3, 3, 1) if quick else (200, 20, 9, 10, 3)
    # The three are measured in turn, a few rounds over: the machine may be shared, and a ratio
    # is only meaningful between figures taken at the same time. Each figure is the median of
    # its rounds; each ratio is the median of the ratios within a round.
    measured = {n: [] for n in (1440, 10080)}
    phases = {}
    for _ in range(rounds):
        for n in (1440, 10080):
            csv = os.path.join(work, f"points-{n}.csv")
            if not os.path.exists(csv):
                write_csv(csv, n)
            out = os.path.join(work, f"bizpulse-{n}.png")
            fields = run([bench, csv, out, str(iters)])[0].split()
            ms_bp, phases[n] = float(fields[0]), (float(fields[2]), float(fields[3]))
            ms_floor = float(run([floor, csv, os.path.join(work, f"floor-{n}.png"), str(floor_iters)])[0])
            ms_mpl = float(run([SYSTEM_PYTHON, os.path.join(HERE, "mpl.py"), csv, os.path.join(work, f"mpl-{n}.png"),
                                str(mpl_iters)])[0]) if have_mpl else float("nan")
            measured[n].append((ms_bp, ms_floor, ms_mpl))
    rows = []
    for n, m in measured.items():
        med = [statistics.median(x[i] for x in m) for i in range(3)]
        vs_floor = statistics.median(x[0] / x[1] for x in m)
        vs_mpl = statistics.median(x[2] / x[0] for x in m)
        spread = (min(x[2] / x[0] for x in m), max(x[2] / x[0] for x in m))
        rows.append((n, *med, vs_floor, vs_mpl, spread, os.path.getsize(os.path.join(work, f"bizpulse-{n}.png"))))

    csv = os.path.join(work, "points-1440.csv")
    cold_png = os.path.join(work, "cold.png")
    cold_bp = cold([cli, "chart", "--csv", csv, "-o", cold_png], cold_png, runs)
    cold_floor = cold([floor, csv, cold_png, "1"], cold_png, runs)
    cold_mpl = cold([SYSTEM_PYTHON, os.path.join(HERE, "mpl.py"), csv, cold_png, "0"], cold_png,
                    max(runs // 3, 2)) if have_mpl else (float("nan"),) * 3
    threads = os.cpu_count() or 1
    per_s = float(run([bench, csv, os.path.join(work, "t.png"), "2" if quick else "4", str(threads), "-t"])[0])

    print(f"render bench: 1200x600 PNG, {threads} CPU(s), {time.strftime('%Y-%m-%d %H:%M')}; work dir {work}")
    print(f"per chart: median CPU ms; {rounds} round(s), ratios are medians of same-round ratios (range)")
    print(f"{'points':>7} {'bizpulse ms':>12} {'cairo floor ms':>15} {'matplotlib ms':>14} "
          f"{'vs floor':>9} {'vs matplotlib':>14} {'(range)':>14} {'PNG KB':>7}")
    for n, bp, fl, mpl, vs_floor, vs_mpl, spread, size in rows:
        print(f"{n:>7} {bp:>12.2f} {fl:>15.2f} {mpl:>14.1f} {vs_floor:>8.2f}x {vs_mpl:>13.1f}x "
              f"{f'{spread[0]:.1f}-{spread[1]:.1f}x':>14} {size / 1024:>7.0f}")
    for n in phases:
        print(f"bizpulse {n:>6} points: drawing {phases[n][0]:.2f} ms + PNG encoding {phases[n][1]:.2f} ms "
              "(last round)")
    print(f"{'cold start to PNG (ms)':<24} bizpulse {cold_bp[0]:6.1f}   floor {cold_floor[0]:6.1f}   "
          f"matplotlib {cold_mpl[0]:7.1f}")
    print(f"{'  its CPU time (ms)':<24} bizpulse {cold_bp[2]:6.1f}   floor {cold_floor[2]:6.1f}   "
          f"matplotlib {cold_mpl[2]:7.1f}")
    print(f"{'peak RSS (MB)':<24} bizpulse {cold_bp[1]:6.1f}   floor {cold_floor[1]:6.1f}   "
          f"matplotlib {cold_mpl[1]:7.1f}")
    print(f"{'charts/s, all threads':<24} bizpulse {per_s:6.0f}   ({threads} threads, 1 440 points)")
    print("targets: <= 1.5x the floor, >= 30x faster than matplotlib, cold start < 50 ms, RSS < 30 MB")


if __name__ == "__main__":
    main()
