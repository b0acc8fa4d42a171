"""How long loading dataset/Train.csv takes: first parse, then from the cache.

    python benchmarks/dataset_load.py

The bar: after the first run, loading the 60k digits takes <= 1 s. The first load here
parses the CSV with pandas (the cache is cleared for it), the next ones read the cache.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402


def timed_load(csv):
    start = time.perf_counter()
    images, _ = analyze.load_digits_csv(csv)
    return time.perf_counter() - start, len(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=analyze.HelpFormatter)
    parser.add_argument("--csv", type=Path, default=analyze.TRAIN_CSV, help="the CSV to load")
    parser.add_argument("--repeats", type=int, default=5, help="cached loads to time")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        if args.csv == analyze.TRAIN_CSV:
            analyze.ensure_dataset()
        analyze.cache_path(args.csv).unlink(missing_ok=True)
        parse_seconds, n = timed_load(args.csv)
        cached = [timed_load(args.csv)[0] for _ in range(args.repeats)]
    except analyze.DataError as exc:
        analyze.fail(exc)
    print(f"{n:,} digits: first load (pandas parse + writing the cache) {parse_seconds:.2f} s; "
          f"cached load {min(cached):.3f}-{max(cached):.3f} s over {args.repeats} runs")


if __name__ == "__main__":
    main()
