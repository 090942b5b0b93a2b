"""Throughput of sstp_pppd.core.hdlc: run ``python bench/hdlc_bench.py [--cpu]``.

Frames carry random payload, the worst realistic case: with the full ACCM
about 14 % of random bytes need escaping.  Every figure is MB/s (10**6 bytes)
of unframed PPP frame bytes, so encode and decode are comparable, and is the
best of several repeats.  ``--cpu`` times with process CPU time instead of the
wall clock, which is steadier on a busy machine.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from sstp_pppd.core import hdlc

SIZES = (64, 576, 1500, 4091)
#: Bytes of frames processed per timed run, whatever the frame size.
VOLUME = 1_000_000
CHUNK = 16 * 1024
REPEATS = 9


def best_rate(run: Callable[[], object], nbytes: int, timer: Callable[[], float]) -> float:
    """MB/s of the fastest of REPEATS runs that each handle ``nbytes``."""
    best = float("inf")
    for _ in range(REPEATS):
        start = timer()
        run()
        best = min(best, timer() - start)
    return nbytes / best / 1e6


def cases(size: int) -> dict[str, tuple[Callable[[], object], int]]:
    """The timed operations for frames of ``size`` bytes."""
    rng = random.Random(size)
    frames = [rng.randbytes(size) for _ in range(max(1, VOLUME // size))]
    nbytes = size * len(frames)
    per_batch = max(1, CHUNK // size)
    batches = [frames[i : i + per_batch] for i in range(0, len(frames), per_batch)]
    fcs16, encode, encode_frames = hdlc.fcs16, hdlc.encode, hdlc.encode_frames

    def feeder(accm: int) -> Callable[[], object]:
        stream = hdlc.encode_frames(frames, accm)
        chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]

        def run() -> None:
            decoder = hdlc.Decoder()
            got = 0
            for chunk in chunks:
                got += len(decoder.feed(chunk))
            if got != len(frames):
                raise SystemExit(f"decoder lost frames: {got} of {len(frames)}")

        return run

    return {
        "fcs16": (lambda: [fcs16(f) for f in frames], nbytes),
        "encode full": (lambda: [encode(f) for f in frames], nbytes),
        "encode 0": (lambda: [encode(f, 0) for f in frames], nbytes),
        "frames full": (lambda: [encode_frames(b) for b in batches], nbytes),
        "frames 0": (lambda: [encode_frames(b, 0) for b in batches], nbytes),
        "feed full": (feeder(hdlc.ACCM_ALL), nbytes),
        "feed 0": (feeder(0), nbytes),
    }


def main() -> None:
    """Print one row of MB/s per frame size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="time with process CPU time")
    args = parser.parse_args()
    timer = time.process_time if args.cpu else time.perf_counter
    names = list(cases(64))
    print("MB/s of frame bytes;", "CPU" if args.cpu else "wall", "time, best of", REPEATS)
    print("frames: encode_frames batches of ~16 KiB; feed: 16 KiB chunks")
    print(f"{'size':>5}" + "".join(f"{name:>13}" for name in names))
    for size in SIZES:
        row = cases(size)
        rates = [best_rate(run, nbytes, timer) for run, nbytes in row.values()]
        print(f"{size:>5}" + "".join(f"{rate:>13.1f}" for rate in rates))


if __name__ == "__main__":
    main()
