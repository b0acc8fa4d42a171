"""Score GAN generator weights files side by side, as analyze.py scores the shipped ones.

    python benchmarks/gan_checkpoints.py weights/gan_generator.weights.h5 runs/gan/gan_generator_ema.weights.h5
    python benchmarks/gan_checkpoints.py --per-digit 1000 FILE...

To compare checkpoints of one run, a run against the shipped weights, or the moving-average
generator (gan_generator_ema.weights.h5) against the generator it averages. Each file is
rebuilt from the record in its folder (gan_generator.json) and draws --per-digit digits of
each class with seed --seed; the table gives requested-digit accuracy, MNIST-FID against the
test set with the real-vs-real floor at the same size, within-digit variety against real
digits', and how clean the paper is. The features are the shipped classifier's.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402

PER_DIGIT = analyze.METRIC_SAMPLES_PER_DIGIT  # scored as analyze.py scores the shipped ones
SEED = 0


def load_generator(path, precision="auto"):
    """(sampler, epochs): the generator in `path`, built from the record of its run's folder,
    drawing in `precision`."""
    import train_gan

    path = Path(path)
    if not path.is_file():
        raise analyze.DataError(f"{path} not found")
    record = analyze.read_record(path.with_name(train_gan.WEIGHT_FILES[0])) or {}
    return train_gan.load_sampler(path.parent, precision, weights_file=path.name), record.get("training", {}).get("epochs", "?")


def main():
    parser = argparse.ArgumentParser(description="Score GAN generator weights files side by side.",
                                     allow_abbrev=False, formatter_class=analyze.HelpFormatter)
    parser.add_argument("weights", nargs="+", type=Path, help="generator weights files (.weights.h5)")
    parser.add_argument("--per-digit", type=int, default=PER_DIGIT, help="generated digits per class")
    parser.add_argument("--seed", type=analyze.seed_argument, default=SEED, help="random seed")
    analyze.add_precision_flag(parser)
    args = parser.parse_args()
    if args.per_digit < 2:
        parser.error("--per-digit must be at least 2")

    try:
        analyze.set_seed(args.seed)
        metrics = analyze.DigitMetrics.of_shipped_classifier(args.seed)
        floor = metrics.real_floor(args.per_digit)
        labels = analyze.requested_labels(None, args.per_digit)
        print(f"{len(labels):,} digits per file, seed {args.seed}, {analyze.resolve_precision(args.precision)}; "
              "real digits at that size: "
              f"MNIST-FID {floor['fid']:.2f} (the floor), variety {floor['variety']:.2f}")
        print("| weights | epochs | requested-digit accuracy | MNIST-FID | × floor | variety | of real's "
              "| exactly-0 pixels | 4-29 pixels | tinted digits |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for path in args.weights:
            sampler, epochs = load_generator(path, args.precision)
            score = metrics.score(sampler(labels, args.seed), labels)
            print(f"| {analyze.display_path(path)} | {epochs} | {score['requested_digit_accuracy']:.2%} "
                  f"| {score['fid']:.2f} | {score['fid'] / floor['fid']:.2f} | {score['variety']:.2f} "
                  f"| {score['variety'] / floor['variety']:.1%} | {score['zero_pixels']:.1%} "
                  f"| {score['grey_pixels']:.1%} | {score['tinted_digits']:.1%} |", flush=True)
    except analyze.DataError as exc:
        analyze.fail(exc)


if __name__ == "__main__":
    main()
