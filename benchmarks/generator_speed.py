"""Issue 9's speed bars, timed as a user meets them: each generation command run whole, in a
fresh interpreter, start-up included.

    python benchmarks/generator_speed.py                      # both generators, 3 runs each
    python benchmarks/generator_speed.py --models diffusion --repeats 5
    python benchmarks/generator_speed.py --quick              # a smoke test: 1 digit each, one run

The commands, one run after the other (never two at once):
- diffusion: `python train_diffusion.py --mode 2 --num-per-digit 100`, 1,000 digits; the bar is
  the whole command in at most 20 s;
- GAN: `python train_gan.py --generate --num-per-digit 1000`, 10,000 digits; the bar is the
  generation itself (the script's "generated N digits in X s", tracing included) in at most 2 s.
Their pictures go to a temporary folder (--figures-dir), so generated_digits/ stays as it is.
It prints the machine (cores, CPU model and family, whether it has bfloat16 in hardware: the
speeds differ 3-4x between the project's machines, README "Results"), a row per run, and the
median against the bar. Time it on a quiet machine: two heavy jobs on 2 cores halve each other.
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

# -- the commands and their bars (issue 9) --------------------------------------------------
COMMANDS = {
    "diffusion": {"script": "train_diffusion.py", "args": ["--mode", "2"], "per_digit": 100,
                  "bar_s": 20.0, "bar_on": "whole"},
    "GAN": {"script": "train_gan.py", "args": ["--generate"], "per_digit": 1000,
            "bar_s": 2.0, "bar_on": "generation"},
}
REPEATS = 3
GENERATED = re.compile(r"generated ([\d,]+) digits in ([\d.]+) s")


def time_command(model, per_digit, weights_dir, precision, figures_dir):
    """(whole command's seconds, generation's seconds) of one run, or a DataError with the
    script's own error line when it fails."""
    spec = COMMANDS[model]
    command = [sys.executable, spec["script"], *spec["args"], "--num-per-digit", str(per_digit),
               "--weights-dir", str(weights_dir), "--precision", precision, "--figures-dir", str(figures_dir)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    whole = time.perf_counter() - start
    found = GENERATED.search(result.stdout)
    if result.returncode != 0 or not found:
        said = [line for line in result.stderr.splitlines() if line.startswith("error:")] or result.stderr.splitlines()
        raise analyze.DataError(f"{spec['script']} failed: {said[-1].removeprefix('error: ') if said else 'no output'}")
    return whole, float(found.group(2))


def time_model(model, args, figures_dir):
    """Run one command --repeats times (--quick: once, on 1 digit of each class), printing a
    row each; the verdict line."""
    spec = COMMANDS[model]
    per_digit, repeats = (1, 1) if args.quick else (spec["per_digit"], args.repeats)
    runs = []
    for run in range(1, repeats + 1):
        whole, generation = time_command(model, per_digit, args.weights_dir, args.precision, figures_dir)
        runs.append({"whole": whole, "generation": generation})
        print(f"| {spec['script']} ({10 * per_digit:,} digits) | {run} | {whole:.1f} | {generation:.2f} |", flush=True)
    median = statistics.median(r[spec["bar_on"]] for r in runs)
    verdict = "(--quick: no verdict)" if args.quick else ("met" if median <= spec["bar_s"] else "not met")
    return (f"{model}: median {spec['bar_on']} {median:.2f} s; the bar is {spec['bar_s']:g} s for "
            f"{10 * spec['per_digit']:,} digits: {verdict}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=analyze.HelpFormatter)
    parser.add_argument("--models", nargs="+", choices=tuple(COMMANDS), default=list(COMMANDS),
                        help="which commands to time")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each command")
    parser.add_argument("--weights-dir", type=Path, default=analyze.WEIGHTS_DIR, help="the weights drawn from")
    analyze.add_precision_flag(parser)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: one digit of each class, one run (says nothing of the bars)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def main(argv=None):
    args = parse_args(argv)
    print(f"machine: {analyze.cpu_summary()}; precision {args.precision}")
    print("| command | run | whole command (s) | generation (s) |")
    print("|---|---|---|---|")
    verdicts = []
    try:
        with tempfile.TemporaryDirectory() as figures_dir:
            for model in args.models:
                verdicts.append(time_model(model, args, figures_dir))
    except analyze.DataError as exc:
        analyze.fail(exc)
    except KeyboardInterrupt:
        analyze.fail("interrupted", code=130)
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
