"""How long loading dataset/Train.csv takes: first parse, then from the cache.

    python benchmarks/dataset_load.py

The bar: after the first run, loading the 60k digits takes <= 1 s. The first load here
parses the CSV with pandas (the cache is cleared for it), the next ones read the cache.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402


def timed_load():
    start = time.perf_counter()
    images, _ = analyze.load_digits_csv(analyze.TRAIN_CSV)
    return time.perf_counter() - start, len(images)


def main():
    analyze.ensure_dataset()
    analyze._cache_path(analyze.TRAIN_CSV).unlink(missing_ok=True)
    parse_seconds, n = timed_load()
    cached = [timed_load()[0] for _ in range(5)]
    print(f"{n:,} digits: first load (pandas parse + writing the cache) {parse_seconds:.2f} s; "
          f"cached load {min(cached):.3f}-{max(cached):.3f} s over 5 runs")


if __name__ == "__main__":
    main()
