"""Both benchmarks of issue 10 in one command: native relay, then connect time in UML.

    .venv/bin/python bench/run.py                  # about 20 min on this 2-CPU machine
    .venv/bin/python bench/run.py --quick          # about 5 min: fewer rounds and connects
    .venv/bin/python bench/run.py --connects 20 --servers lcp-first --skip-native

1. ``bench/native_bench.py`` (sstpc and sstp-pppd natively in pty mode against a loopback
   TLS sink/source: MB/s and client CPU s/GB per direction and frame mix, peak RSS);
2. ``bench/connect_bench.py`` (User-Mode Linux, both clients, pty and launch mode, against
   sstp-server with a ``silent`` pppd and with one that sends LCP first; one guest boot per
   server, so each stays under 10 minutes).

Each runs as its own process, one after the other (never side by side: they would share
the CPUs). Then this prints both tables (medians, ratios sstp-pppd / sstpc) and writes one
plot (``--plot``, default ``bench/bench.png``): throughput and CPU per GB of every native
session, and every connect's time, both clients. Figures and logs go to a fresh directory
under ``.e2e/runs/`` (printed). Needs the ``bench`` extra (matplotlib) for the plot only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import connect_bench  # noqa: E402

CLIENTS = ("sstpc", "sstp-pppd")
MARKERS = {"sstpc": "o", "sstp-pppd": "s"}


def run(argv: list[str]) -> int:
    print(f"\n$ {' '.join(argv)}", flush=True)
    child = subprocess.Popen(argv)
    try:
        return child.wait()
    except KeyboardInterrupt:
        # SIGTERM or ^C: the child ends too (connect_bench then powers its guest off).
        child.terminate()
        child.wait(60)
        raise


def native_table(runs: list[dict[str, Any]]) -> str:
    # native_bench's own table, imported only now: it needs cryptography at import.
    import native_bench  # noqa: PLC0415

    return str(native_bench.table(runs))


def plot(native: list[dict[str, Any]], connects: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        print("matplotlib missing (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return False
    series = sorted({(r["mix"], r["direction"]) for r in native if r.get("mix")})
    cases = list(dict.fromkeys((c["server"], c["mode"]) for c in connects))
    cols = max(len(series), len(cases), 1)
    rows = (2 if series else 0) + (1 if cases else 0)
    if not rows:
        return False
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for col, (mix, direction) in enumerate(series):
        arrow = "pppd→server" if direction == "up" else "server→pppd"
        for row, (key, label) in enumerate((("mb_s", "MB/s"), ("cpu_s_gb", "CPU s/GB"))):
            ax = axes[row][col]
            ax.set_visible(True)
            for client in CLIENTS:
                pts = [
                    (r["round"], r[key])
                    for r in native
                    if (r["client"], r.get("mix"), r["direction"]) == (client, mix, direction)
                ]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker=MARKERS[client], label=client)
            ax.set_ylim(bottom=0)
            ax.set_xticks(sorted({r["round"] for r in native}))
            ax.set_xlabel("round")
            ax.set_ylabel(label)
            ax.set_title(f"native {mix}, {arrow}", fontsize="small")
            ax.grid(alpha=0.3)
    for col, (server, mode) in enumerate(cases):
        ax = axes[rows - 1][col]
        ax.set_visible(True)
        for client in CLIENTS:
            pts = [
                (c["index"], c["connect_s"])
                for c in connects
                if (c["client"], c["server"], c["mode"]) == (client, server, mode)
                and c["connect_s"] is not None
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=MARKERS[client], ls="", label=client)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("connect")
        ax.set_ylabel("connect s (UML)")
        ax.set_title(f"{server} server, {mode} mode", fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes.flat:
        if ax.get_visible() and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
            break
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="native: 1 round of 16 MB; connect: 5 per client and case")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3, help="native rounds (3)")
    ap.add_argument("--mbytes", type=int, default=64, help="native MB per transfer (64)")
    ap.add_argument("--connects", type=int, default=20, help="connects per client and case")
    ap.add_argument("--servers", default=",".join(connect_bench.SERVERS))
    ap.add_argument("--modes", default=",".join(connect_bench.MODES))
    ap.add_argument("--skip-native", action="store_true")
    ap.add_argument("--skip-connect", action="store_true")
    ap.add_argument("--plot", type=Path, default=BENCH / "bench.png")
    ap.add_argument("--from", dest="source", type=Path,
                    help="no runs: tables and plot from a run's summary.json")  # fmt: skip
    args = ap.parse_args()
    if args.source is not None:
        saved = json.loads(args.source.read_text())
        report(saved["native"], saved["connects"], args.plot)
        return 0
    if args.quick:
        args.rounds, args.mbytes, args.connects = 1, 16, 5
    out = REPO / ".e2e" / "runs" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    py = sys.executable
    load0 = os.getloadavg()
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
          f"load {' '.join(f'{x:.2f}' for x in load0)}; figures in {out}")  # fmt: skip
    native: list[dict[str, Any]] = []
    if not args.skip_native:
        njson = out / "native.json"
        run([py, str(BENCH / "native_bench.py"), "--rounds", str(args.rounds),
             "--mbytes", str(args.mbytes), "--json", str(njson),
             "--plot", str(out / "native.png")])  # fmt: skip
        if njson.exists():
            native = json.loads(njson.read_text())
    connects: list[dict[str, Any]] = []
    if not args.skip_connect:
        for server in args.servers.split(","):
            cjson = out / f"connect-{server}.json"
            run([py, str(BENCH / "connect_bench.py"), "--connects", str(args.connects),
                 "--servers", server, "--modes", args.modes, "--json", str(cjson)])  # fmt: skip
            if cjson.exists():
                connects += json.loads(cjson.read_text())["connects"]
    load1 = os.getloadavg()
    print(f"\n# summary; load at the start {load0[0]:.2f}, at the end {load1[0]:.2f}")
    (out / "summary.json").write_text(json.dumps({"native": native, "connects": connects}))
    report(native, connects, args.plot)
    return 0


def report(native: list[dict[str, Any]], connects: list[dict[str, Any]], path: Path) -> None:
    if native:
        print("\nnative relay (medians over rounds; ratio = sstp-pppd / sstpc)\n")
        print(native_table(native))
    if connects:
        results = [connect_bench.Connect(**c) for c in connects]
        print("\nconnect time in UML, start -> address on ppp0 (medians)\n")
        print(connect_bench.table(connect_bench.summary(results)))
        for line in connect_bench.losses(results):
            print("  " + line)
    if plot(native, connects, path):
        print(f"\nplot: {path}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
