"""Issue 9's speed bars, and issue 38's distilled diffusion sampler against the full one, timed
as a user meets them: each generation command run whole, in a fresh interpreter, start-up included.

    python benchmarks/generator_speed.py                      # the three commands, 3 runs each
    python benchmarks/generator_speed.py --models diffusion diffusion-teacher --repeats 5
    python benchmarks/generator_speed.py --quick              # a smoke test: 1 digit each, one run

The commands, one run after the other (never two at once):
- diffusion: `python train_diffusion.py --mode 2 --num-per-digit 100`, 1,000 digits, drawn with the
  distilled sampler where <weights-dir>/distilled holds one, else with the full one; the bar is
  the whole command in at most 20 s;
- diffusion-teacher: the same with `--teacher`, always the full sampler; no bar of its own: it is
  what the distilled one is measured against;
- GAN: `python train_gan.py --generate --num-per-digit 1000`, 10,000 digits; the bar is the
  generation itself (the script's "generated N digits in X s", tracing included) in at most 2 s.
Their pictures go to a temporary folder (--figures-dir), so generated_digits/ stays as it is.
It prints the machine (cores, CPU model and family, whether it has bfloat16 in hardware: the
speeds differ 3-4x between the project's machines, README "Results"), a row per run (the whole
command's and the generation's seconds, network passes per digit as the diffusion script says
them, digits per second of the generation), the median against the bar, and when both diffusion
commands ran, the distilled sampler's digits per second over the full one's (issue 38's bar:
at least 3.5x), or that there is no distilled sampler to compare. Time it on a quiet machine:
two heavy jobs on 2 cores halve each other.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import analyze  # noqa: E402  (TensorFlow is never loaded here: the commands run in their own processes)
import train_diffusion  # noqa: E402  (only has_distilled and DISTILL_COMMAND: a look at the weights folder)

# -- the commands and their bars (issues 9 and 38) ------------------------------------------
GAN_PASSES_PER_DIGIT = 1  # the GAN's generator draws a digit in one pass; the script does not say it
COMMANDS = {
    "diffusion": {"script": "train_diffusion.py", "args": ["--mode", "2"], "per_digit": 100,
                  "bar_s": 20.0, "bar_on": "whole"},
    "diffusion-teacher": {"script": "train_diffusion.py", "args": ["--mode", "2", "--teacher"], "per_digit": 100,
                          "bar_s": None, "bar_on": "whole"},
    "GAN": {"script": "train_gan.py", "args": ["--generate"], "per_digit": 1000,
            "bar_s": 2.0, "bar_on": "generation", "passes": GAN_PASSES_PER_DIGIT},
}
REPEATS = 3
SPEED_UP_BAR = 3.5  # issue 38: the distilled sampler's digits/s at least 3.5x the full one's
GENERATED = re.compile(r"generated ([\d,]+) digits in ([\d.]+) s")
PASSES = re.compile(r"^(\d+) network passes per digit", re.M)


def rate(digits_per_s):
    return f"{digits_per_s:,.0f}" if digits_per_s >= 100 else f"{digits_per_s:.3g}"


def parse_run(model, stdout):
    """What a command's output says of its generation: {"digits", "generation" (s), "passes"
    (network passes per digit)}, or None where a line is missing."""
    found, passes = GENERATED.search(stdout), PASSES.search(stdout)
    if not found or not (passes or "passes" in COMMANDS[model]):
        return None
    return {"digits": int(found.group(1).replace(",", "")), "generation": float(found.group(2)),
            "passes": int(passes.group(1)) if passes else COMMANDS[model]["passes"]}


def time_command(model, per_digit, weights_dir, precision, figures_dir):
    """One run: parse_run's figures and the whole command's seconds ("whole"), or a DataError
    with the script's own error line when it fails."""
    spec = COMMANDS[model]
    command = [sys.executable, spec["script"], *spec["args"], "--num-per-digit", str(per_digit),
               "--weights-dir", str(weights_dir), "--precision", precision, "--figures-dir", str(figures_dir)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    whole = time.perf_counter() - start
    run = parse_run(model, result.stdout)
    if result.returncode != 0:
        said = [line for line in result.stderr.splitlines() if line.startswith("error:")] or result.stderr.splitlines()
        raise analyze.DataError(f"{spec['script']} failed: {said[-1].removeprefix('error: ') if said else 'no output'}")
    if run is None:
        raise analyze.DataError(f"{spec['script']} failed: it did not say \"generated N digits in X s\""
                                + ("" if "passes" in spec else " and \"N network passes per digit\""))
    return {**run, "whole": whole, "digits_per_s": run["digits"] / run["generation"]}


def sampler_name(model, weights_dir):
    """Which diffusion sampler a command draws with: "distilled", "full", or None (the GAN)."""
    if not model.startswith("diffusion"):
        return None
    return "distilled" if model == "diffusion" and train_diffusion.has_distilled(weights_dir) else "full"


def time_model(model, args, figures_dir):
    """Run one command --repeats times (--quick: once, on 1 digit of each class), printing a
    row each; (the verdict line, the median digits per second)."""
    spec = COMMANDS[model]
    per_digit, repeats = (1, 1) if args.quick else (spec["per_digit"], args.repeats)
    sampler = sampler_name(model, args.weights_dir)
    label = " ".join([spec["script"], *spec["args"]]) + (f", {sampler} sampler" if sampler else "")
    runs = []
    for number in range(1, repeats + 1):
        run = time_command(model, per_digit, args.weights_dir, args.precision, figures_dir)
        runs.append(run)
        print(f"| {label} ({10 * per_digit:,} digits) | {number} | {run['whole']:.1f} | {run['generation']:.2f} "
              f"| {run['passes']} | {rate(run['digits_per_s'])} |", flush=True)
    median = statistics.median(r[spec["bar_on"]] for r in runs)
    speed = statistics.median(r["digits_per_s"] for r in runs)
    if spec["bar_s"] is None:
        verdict = "no bar of its own: the distilled sampler's comparison"
    else:
        verdict = "(--quick: no verdict)" if args.quick else ("met" if median <= spec["bar_s"] else "not met")
        verdict = f"the bar is {spec['bar_s']:g} s for {10 * spec['per_digit']:,} digits: {verdict}"
    passes = runs[0]["passes"]
    return (f"{model}: {passes} network pass{'es' * (passes != 1)} per digit, median {spec['bar_on']} "
            f"{median:.2f} s, {rate(speed)} digits/s; {verdict}"), speed


def speed_up_line(speeds, weights_dir, quick):
    """Issue 38's verdict: the distilled sampler's digits/s over the full one's, when both ran."""
    if not {"diffusion", "diffusion-teacher"} <= set(speeds):
        return None
    if not train_diffusion.has_distilled(weights_dir):
        folder = analyze.display_path(Path(weights_dir) / train_diffusion.DISTILLED_DIR)
        return (f"distilled over full: no distilled sampler in {folder} (`{train_diffusion.DISTILL_COMMAND}` "
                "makes one): both diffusion commands drew with the full one")
    ratio = speeds["diffusion"] / speeds["diffusion-teacher"]
    verdict = "(--quick: no verdict)" if quick else ("met" if ratio >= SPEED_UP_BAR else "not met")
    return f"distilled over full: {ratio:.2f}x the digits/s; the bar is at least {SPEED_UP_BAR:g}x: {verdict}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=analyze.HelpFormatter)
    parser.add_argument("--models", nargs="+", choices=tuple(COMMANDS), default=list(COMMANDS),
                        help="which commands to time (diffusion-teacher: train_diffusion.py --teacher, the full "
                             "sampler, to compare the distilled one with)")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each command")
    parser.add_argument("--weights-dir", type=Path, default=analyze.WEIGHTS_DIR, help="the weights drawn from")
    analyze.add_precision_flag(parser)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: one digit of each class, one run (says nothing of the bars)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    args.models = list(dict.fromkeys(args.models))  # each once, in the order asked
    return args


def main(argv=None):
    args = parse_args(argv)
    print(f"machine: {analyze.cpu_summary()}; precision {args.precision}")
    print("| command | run | whole command (s) | generation (s) | network passes per digit | digits/s |")
    print("|---|---|---|---|---|---|")
    verdicts, speeds = [], {}
    try:
        with tempfile.TemporaryDirectory() as figures_dir:
            for model in args.models:
                verdict, speeds[model] = time_model(model, args, figures_dir)
                verdicts.append(verdict)
    except analyze.DataError as exc:
        analyze.fail(exc)
    except KeyboardInterrupt:
        analyze.fail("interrupted", code=130)
    speed_up = speed_up_line(speeds, args.weights_dir, args.quick)
    print("\n".join(verdicts + ([speed_up] if speed_up else [])))


if __name__ == "__main__":
    main()
