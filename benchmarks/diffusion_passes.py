"""Network passes per digit against quality, for the diffusion model's samplers.

    python benchmarks/diffusion_passes.py                 # 2,000 digits a row, seed 0
    python benchmarks/diffusion_passes.py --steps 4 8 --per-digit 100
    python benchmarks/diffusion_passes.py --quick         # a smoke test: 20 digits a row

Rows, each drawn with the same seed and scored like the report (`python analyze.py`) in the
shipped classifier's features:
- the full sampler (`--teacher`): 10 steps with both guidances, 17 passes per digit;
- the same network in plain steps (no guidance: one pass a step), what few passes give
  without distillation;
- the distilled sampler in <weights-dir>/distilled, if there is one, at each --steps.
Each row says whether it meets issue 38's quality bars (QUALITY_BARS). CAS is
benchmarks/cas.py's. Time it on a quiet machine: digits/s is measured here too.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402
import train_diffusion  # noqa: E402  (TensorFlow loads later, inside it)

PER_DIGIT = 200
STEPS = (4, 6, 8)
SEED = 0
# Against real digits at the same sample size: MNIST-FID <= 1.6x their floor, variety >= 95%
# of theirs; the paper as clean as the shipped sampler's.
QUALITY_BARS = {"accuracy": 0.995, "fid_ratio": 1.6, "variety_share": 0.95,
                "grey_pixels": 0.03, "tinted_digits": 0.01, "zero_pixels": 0.70}


def meets_bars(score, floor):
    return (score["requested_digit_accuracy"] >= QUALITY_BARS["accuracy"]
            and score["fid"] <= QUALITY_BARS["fid_ratio"] * floor["fid"]
            and score["variety"] >= QUALITY_BARS["variety_share"] * floor["variety"]
            and score["grey_pixels"] <= QUALITY_BARS["grey_pixels"]
            and score["tinted_digits"] <= QUALITY_BARS["tinted_digits"]
            and score["zero_pixels"] >= QUALITY_BARS["zero_pixels"])


def rows_to_draw(args):
    """(name, sampler, settings) for every row."""
    full = train_diffusion.load_sampler(args.weights_dir, args.precision, teacher=True)
    plain = train_diffusion.drawing_sampler(full.network, None, args.precision)
    rows = [("full sampler", full, {})]
    rows += [("same network, plain steps", plain, {"steps": steps, "guidance": 1.0}) for steps in args.steps]
    if train_diffusion.has_distilled(args.weights_dir):
        distilled = train_diffusion.load_sampler(args.weights_dir, args.precision)
        rows += [("distilled", distilled, {"steps": steps}) for steps in args.steps]
    else:
        print(f"no distilled sampler in {analyze.display_path(args.weights_dir / train_diffusion.DISTILLED_DIR)}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=analyze.HelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=list(STEPS),
                        help="steps of the plain and the distilled rows")
    parser.add_argument("--per-digit", type=int, default=PER_DIGIT, help="digits of each class a row")
    parser.add_argument("--seed", type=analyze.seed_argument, default=SEED, help="random seed")
    parser.add_argument("--weights-dir", type=Path, default=analyze.WEIGHTS_DIR, help="the diffusion weights")
    analyze.add_precision_flag(parser)
    parser.add_argument("--quick", action="store_true", help="2 digits of each class a row: checks the plumbing")
    args = parser.parse_args(argv)
    if args.quick:
        args.per_digit = 2
    if args.per_digit < 2 or min(args.steps) < 1:
        parser.error("--per-digit must be at least 2 and --steps at least 1")

    try:
        from train_classifier import load_classifier

        analyze.set_seed(args.seed)
        test_images, _ = analyze.load_digits_csv(analyze.TEST_CSV)
        train_images, train_labels = analyze.load_digits_csv(analyze.TRAIN_CSV)
        classifier = analyze.with_features(load_classifier(analyze.CLASSIFIER_WEIGHTS))
        _, reference = analyze.probabilities_and_features(classifier, test_images)
        metrics = analyze.DigitMetrics(classifier, reference, train_images, train_labels, args.seed)
        floor = metrics.real_floor(args.per_digit)
        labels = analyze.requested_labels(None, args.per_digit)
        print(f"machine: {analyze.cpu_summary()}; {len(labels):,} digits a row, seed {args.seed}; real digits: "
              f"MNIST-FID {floor['fid']:.2f} (the floor), variety {floor['variety']:.2f}")
        print("| sampler | steps | passes per digit | digits/s | requested digit | MNIST-FID (x floor) "
              "| variety (of real) | grey | tinted | exactly 0 | quality bars |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, sampler, settings in rows_to_draw(args):
            sampler(labels[::args.per_digit], args.seed, **settings)  # tracing is not drawing speed
            start = time.perf_counter()
            images = sampler(labels, args.seed, **settings)
            speed = len(images) / (time.perf_counter() - start)
            score = metrics.score(images, labels)
            steps = settings.get("steps", sampler.defaults["steps"])
            print(f"| {name} | {steps} | {sampler.passes_per_digit(**settings)} | {speed:,.0f} | "
                  f"{score['requested_digit_accuracy']:.2%} | {score['fid']:.2f} ({score['fid'] / floor['fid']:.2f}) | "
                  f"{score['variety']:.2f} ({score['variety'] / floor['variety']:.1%}) | {score['grey_pixels']:.1%} | "
                  f"{score['tinted_digits']:.1%} | {score['zero_pixels']:.1%} | "
                  f"{'met' if meets_bars(score, floor) else 'not met'} |", flush=True)
    except analyze.DataError as exc:
        analyze.fail(exc)
    except KeyboardInterrupt:
        analyze.fail("interrupted", code=130)


if __name__ == "__main__":
    main()
