"""Choose the diffusion sampler's defaults: sweep solver, step spacing, steps, guidance, autoguidance, their
intervals and eta.

    python benchmarks/diffusion_settings.py                       # the shipped settings alone, ~1 min
    python benchmarks/diffusion_settings.py --guidance 1 2 3 --per-digit 200
    python benchmarks/diffusion_settings.py --solvers dpm++2m --steps 8 10 --intervals 0,inf 0.3,5
    python benchmarks/diffusion_settings.py --spacings angle logsnr --weights-dir weights/in_progress
    python benchmarks/diffusion_settings.py --solvers ddim --steps 20 50 --etas 0 0.5 1 --guidance 1 1.5
    python benchmarks/diffusion_settings.py --etas 1 --eta-intervals 0,inf 0.6,2.5   # fresh noise in a band
    python benchmarks/diffusion_settings.py --autoguidance 2 3 --autoguidance-intervals 0.6,5 --guidance 1 1.5

For every setting it draws --per-digit samples of each digit with the shipped weights and
prints requested-digit accuracy, MNIST-FID against the test set (with the real-vs-real floor
at the same size), within-digit variety, how clean the paper is, and digits/s. Stronger
guidance draws the requested digit more reliably but less variously; fewer steps are faster;
fresh noise (--etas, at every step or within --eta-intervals) widens what is drawn;
autoguidance (--autoguidance, with the weak network in <weights-dir>/autoguide) steers away
from a weaker network's mistakes (benchmarks/README.md). Every flag
defaults to the sampler's own setting, so each sweeps only what it is given.
"""

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402
import train_diffusion  # noqa: E402  (TensorFlow loads later, inside it)


def interval_argument(text):
    """argparse type for LOW,HIGH: an interval of tan(angle), or a one-line usage error."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be LOW,HIGH (e.g. 0.3,5 or 0,inf), got {text!r}") from None
    if not 0 <= low < high:
        raise argparse.ArgumentTypeError(f"needs 0 <= LOW < HIGH, got {text!r}")
    return low, high


def main():
    parser = argparse.ArgumentParser(description="Sweep the diffusion sampler's settings and score each.",
                                     allow_abbrev=False, formatter_class=analyze.HelpFormatter)
    # Each flag takes several values to sweep; its default is the sampler's own, so a bare run
    # measures the shipped settings (guidance and autoguidance: the loaded sampler's, which
    # depend on whether there is a weak network).
    defaults = train_diffusion.SAMPLER_DEFAULTS
    parser.add_argument("--guidance", type=float, nargs="+",
                        help="classifier-free guidance scales (1 = plain conditional, 0 = unconditional; "
                             "default: the sampler's)")
    parser.add_argument("--steps", type=int, nargs="+", default=[defaults["steps"]], help="sampling steps")
    parser.add_argument("--solvers", nargs="+", choices=train_diffusion.SOLVERS, default=[defaults["solver"]],
                        help="ddim (first order) or dpm++2m (second order)")
    parser.add_argument("--spacings", nargs="+", choices=train_diffusion.SPACINGS, default=[defaults["spacing"]],
                        help="steps evenly spaced in noise angle or in log signal-to-noise ratio")
    parser.add_argument("--intervals", nargs="+", type=interval_argument, default=[defaults["guidance_interval"]],
                        help="guidance intervals LOW,HIGH in noise-to-signal ratio tan(angle)")
    parser.add_argument("--autoguidance", type=float, nargs="+",
                        help="autoguidance scales (1 = off; others need the weak network in <weights-dir>/"
                             f"{train_diffusion.WEAK_DIR}; default: the sampler's)")
    parser.add_argument("--autoguidance-intervals", nargs="+", type=interval_argument,
                        default=[defaults["autoguidance_interval"]],
                        help="autoguidance intervals LOW,HIGH in noise-to-signal ratio tan(angle)")
    parser.add_argument("--etas", type=float, nargs="+", default=[defaults["eta"]],
                        help="fresh noise at every step (or those of --eta-intervals): 0 deterministic, 1 DDPM-like "
                             "(DPM-Solver++(2M) SDE with dpm++2m)")
    parser.add_argument("--eta-intervals", nargs="+", type=interval_argument, default=[defaults["eta_interval"]],
                        help="add the fresh noise only at tan(angle) in LOW,HIGH (default: at every step)")
    parser.add_argument("--paper-levels", type=int, nargs="+", default=[defaults["paper_level"]],
                        help="pixels at or below this grey level are set to 0 (the sampler's paper_level)")
    parser.add_argument("--per-digit", type=int, default=100, help="samples per digit and setting")
    parser.add_argument("--seed", type=analyze.seed_argument, default=0, help="random seed")
    analyze.add_precision_flag(parser)
    parser.add_argument("--weights-dir", type=Path, default=analyze.WEIGHTS_DIR,
                        help="the folder holding diffusion_model.weights.h5")
    args = parser.parse_args()
    if not all(0 <= eta <= 1 for eta in args.etas):
        parser.error("--etas must be between 0 and 1")
    if args.per_digit < 2:
        parser.error("--per-digit must be at least 2 (variety needs two digits of each kind)")
    if (min((args.guidance or []) + (args.autoguidance or []) + [0]) < 0 or min(args.steps) < 1
            or not all(0 <= level <= 255 for level in args.paper_levels)):
        parser.error("--guidance and --autoguidance must be 0 or more, --steps at least 1, --paper-levels 0-255")

    try:
        analyze.set_seed(args.seed)
        metrics = analyze.DigitMetrics.of_shipped_classifier(args.seed)
        # Any scale of the sweep but 1 needs the weak network (None: the defaults decide).
        autoguidance = None if args.autoguidance is None else next((w for w in args.autoguidance if w != 1), 1)
        sampler = train_diffusion.load_sampler(args.weights_dir, args.precision, autoguidance=autoguidance)
        record = analyze.read_record(args.weights_dir / train_diffusion.WEIGHT_FILES[0])
        floor = metrics.real_floor(args.per_digit)
    except analyze.DataError as exc:
        analyze.fail(exc)
    args.guidance = args.guidance or [sampler.defaults["guidance"]]
    args.autoguidance = args.autoguidance or [sampler.defaults["autoguidance"]]
    labels = analyze.requested_labels(None, args.per_digit)
    sampler(labels[:10], steps=2)  # trace once: measure sampling, not tracing
    print(f"weights after {(record or {}).get('training', {}).get('epochs', '?')} epochs; "
          f"{len(labels):,} samples per setting, {analyze.resolve_precision(args.precision)}; "
          f"real floor: MNIST-FID {floor['fid']:.2f}, "
          f"variety {floor['variety']:.2f}")
    print("| solver | spacing | steps | guidance | interval | autoguidance | its interval | eta | eta interval "
          "| paper level | requested-digit accuracy | MNIST-FID | × floor | variety | exactly-0 pixels | 1-3 pixels "
          "| 4-29 pixels | tinted digits | digits/s |")
    print("|---" * 19 + "|")
    settings = itertools.product(args.solvers, args.spacings, args.steps, args.intervals, args.guidance,
                                 args.autoguidance, args.autoguidance_intervals, args.etas, args.eta_intervals)
    for solver, spacing, steps, (low, high), guidance, autoguidance, ag_interval, eta, eta_interval in settings:
        if autoguidance == 1 and ag_interval != args.autoguidance_intervals[0]:
            continue  # without autoguidance its interval changes nothing: drawn once
        start = time.perf_counter()
        images = sampler(labels, args.seed, steps=steps, solver=solver, spacing=spacing, guidance=guidance,
                         guidance_interval=(low, high), autoguidance=autoguidance, autoguidance_interval=ag_interval,
                         eta=eta, eta_interval=eta_interval, paper_level=0, progress=True)
        speed = len(images) / (time.perf_counter() - start)
        noise_band = "every step" if eta_interval is None else "({:g}, {:g}]".format(*eta_interval)
        ag_band = "({:g}, {:g}]".format(*ag_interval) if autoguidance != 1 else "-"
        for paper_level in args.paper_levels:  # the same digits, with their faintest pixels blanked
            score = metrics.score(train_diffusion.blank_paper(images.copy(), paper_level), labels)
            print(f"| {solver} | {spacing} | {steps} | {guidance:g} | ({low:g}, {high:g}] | {autoguidance:g} "
                  f"| {ag_band} | {eta:g} | {noise_band} "
                  f"| {paper_level} | {score['requested_digit_accuracy']:.2%} | {score['fid']:.2f} | {score['fid'] / floor['fid']:.2f} "
                  f"| {score['variety']:.2f} | {score['zero_pixels']:.1%} | {score['faint_pixels']:.1%} "
                  f"| {score['grey_pixels']:.1%} | {score['tinted_digits']:.1%} | {speed:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
