"""How much of the page the generators' digits ink, beside real digits of the same class.

    python benchmarks/ink_range.py                       # 200 per digit from each shipped generator
    python benchmarks/ink_range.py --models diffusion --guidance 1
    python benchmarks/ink_range.py --weights-dir weights/in_progress/diffusion_ink15 --models diffusion

A digit's ink is its mean pixel over 255 (train_diffusion.ink_share): thin, small digits ink
little of the page, bold ones much. For each digit the table gives the real training digits'
mean, spread (standard deviation) and 5th and 95th percentiles beside the generated ones', and
the share of generated digits inked more than 95% of real ones of that class (5% if the bold
tail is drawn as often as it occurs) and less than the thinnest 5% (likewise 5%). A generator
that draws too narrow a range of stroke weights shows a spread under real's and a bold share
under 5%; a classifier trained on its digits then misreads bold real ones (issue 9).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402
import train_diffusion  # noqa: E402  (TensorFlow loads later, inside it)

PER_DIGIT = 200
SEED = 0


def ink_table(real_ink, real_labels, drawn_ink, drawn_labels):
    """Rows of (digit, real mean, std, p5, p95, drawn mean, std, p5, p95, bold share, thin share),
    then the same over all digits (spread and shares averaged over the classes)."""
    rows = []
    for digit in range(analyze.NUM_CLASSES):
        real, drawn = real_ink[real_labels == digit], drawn_ink[drawn_labels == digit]
        thin, bold = np.percentile(real, [5, 95])
        rows.append((digit, real.mean(), real.std(), thin, bold, drawn.mean(), drawn.std(),
                     *np.percentile(drawn, [5, 95]), (drawn > bold).mean(), (drawn < thin).mean()))
    table = np.array([row[1:] for row in rows])
    return rows, ("all", *table.mean(0))


def print_table(name, rows, overall):
    print(f"\n{name}: ink share of the page in percent (real training digits | drawn)")
    print("| digit | real mean | real spread | real 5th-95th | drawn mean | drawn spread | drawn 5th-95th "
          "| drawn bolder than real's 95% | drawn thinner than real's 5% |")
    print("|---|---|---|---|---|---|---|---|---|")
    for digit, rm, rs, r5, r95, dm, ds, d5, d95, bold, thin in [*rows, overall]:
        print(f"| {digit} | {100 * rm:.2f} | {100 * rs:.2f} | {100 * r5:.2f}-{100 * r95:.2f} | {100 * dm:.2f} "
              f"| {100 * ds:.2f} ({ds / rs:.0%}) | {100 * d5:.2f}-{100 * d95:.2f} | {bold:.1%} | {thin:.1%} |")


def main():
    parser = argparse.ArgumentParser(description="Ink range of generated digits against real ones, per class.",
                                     allow_abbrev=False, formatter_class=analyze.HelpFormatter)
    parser.add_argument("--per-digit", type=int, default=PER_DIGIT, help="digits drawn per class")
    analyze.add_models_flag(parser)
    parser.add_argument("--weights-dir", type=Path, default=analyze.WEIGHTS_DIR,
                        help="the folder holding the generators' weights")
    parser.add_argument("--seed", type=analyze.seed_argument, default=SEED, help="random seed for sampling")
    analyze.add_precision_flag(parser)
    train_diffusion.add_sampler_arguments(parser)  # the diffusion model's; the GAN has none
    args = parser.parse_args()
    if args.per_digit < 20:
        parser.error("--per-digit must be at least 20 (percentiles of fewer say little)")
    train_diffusion.check_sampler_arguments(parser, args)
    settings = train_diffusion.sampler_settings(args)

    try:
        analyze.set_seed(args.seed)
        images, labels = analyze.load_digits_csv(analyze.TRAIN_CSV)
        real_ink = np.asarray(train_diffusion.ink_share(images))
        generators = analyze.trained_generators(args.weights_dir, args.models)
        for module in generators:
            autoguidance = {"autoguidance": settings["autoguidance"]} if module.MODEL_NAME == "diffusion" else {}
            sampler = module.load_sampler(args.weights_dir, args.precision, **autoguidance)
            drawn_labels = analyze.requested_labels(None, args.per_digit)
            drawn = sampler(drawn_labels, args.seed, progress=True, **(settings if module.MODEL_NAME == "diffusion" else {}))
            rows, overall = ink_table(real_ink, labels, np.asarray(train_diffusion.ink_share(drawn)),
                                      drawn_labels)
            print_table(f"{module.MODEL_NAME} ({analyze.display_path(args.weights_dir)}, "
                        f"{len(drawn):,} digits, seed {args.seed})", rows, overall)
    except analyze.DataError as exc:
        analyze.fail(exc)


if __name__ == "__main__":
    main()
