"""The original picture with matplotlib (the service bizpulse replaces): figure 12x6 in at dpi
100, cornflowerblue line, red anomaly scatter, title "Metric Analysis: <name>".

    mpl.py CSV OUT.png ITERATIONS     prints the median CPU milliseconds per chart (after a warm-up)
    mpl.py CSV OUT.png 0              one chart, for cold start (process start -> PNG written)"""
import io
import statistics
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from datetime import datetime, timezone  # noqa: E402


def chart(ts, vs, an, out):
    fig, ax = plt.subplots(figsize=(12, 6), dpi=100)
    ax.plot(ts, vs, color="cornflowerblue", label="value")
    ax.scatter([t for t, a in zip(ts, an) if a], [v for v, a in zip(vs, an) if a], color="red",
               label="anomaly", zorder=3)
    ax.set_title("Metric Analysis: user_registration")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.legend()
    fig.savefig(out, format="png")
    plt.close(fig)


def main():
    path, out, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ts, vs, an = [], [], []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) == 3 and parts[0].isdigit():
                ts.append(datetime.fromtimestamp(int(parts[0]), tz=timezone.utc))
                vs.append(float(parts[1]))
                an.append(parts[2] == "1")
    chart(ts, vs, an, out)
    if iters == 0:
        return
    ms = []
    for _ in range(iters):
        t0 = time.process_time()
        chart(ts, vs, an, io.BytesIO())
        ms.append((time.process_time() - t0) * 1000)
    print(f"{statistics.median(ms):.3f}")


main()
