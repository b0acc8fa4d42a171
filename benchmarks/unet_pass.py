"""How long one pass of the diffusion U-Net takes, for network options and number formats.

    python benchmarks/unet_pass.py                                # MODEL_CONFIG, with and without attention
    python benchmarks/unet_pass.py --precisions float32 bfloat16  # also what bfloat16 costs on this CPU
    python benchmarks/unet_pass.py --configs '{}' '{"conditioning": "shift"}' --batch 500

Sampling time is network passes (README, train_diffusion.py): a network option that makes a
pass slower makes every digit slower by as much, against the bar of 1,000 digits in 20 s.
Each --configs entry is a JSON object of build_unet arguments laid over MODEL_CONFIG. The
networks have fresh weights (a pass costs the same whatever they are); each runs as a
tf.function, traced once untimed, and then all are timed in turn, --repeats rounds,
so a machine that slows down part-way slows every row alike. Prints the median seconds per
pass over --batch digits and each row against the first. Time it on a quiet machine.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402  (before TensorFlow: it chooses TensorFlow's CPU kernels)
import train_diffusion  # noqa: E402

DEFAULT_CONFIGS = ('{}', '{"attention": true}')
BATCH = 1000
REPEATS = 6


def config_argument(text):
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(config, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of build_unet arguments: {text!r}")
    try:  # the keys and value types a weights record may hold, checked the same way
        analyze.checked_config({"config": config}, train_diffusion.MODEL_CONFIG, "--configs", "")
    except analyze.DataError as exc:
        # The message names a record and how to remake it; here only its middle applies.
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1].rsplit("; ", 1)[0]) from None
    if config.get("conditioning", train_diffusion.MODEL_CONFIG["conditioning"]) not in train_diffusion.CONDITIONINGS:
        raise argparse.ArgumentTypeError(f"conditioning must be one of {', '.join(train_diffusion.CONDITIONINGS)}")
    return config


def main():
    parser = argparse.ArgumentParser(description="Time one U-Net pass per network option and number format.",
                                     allow_abbrev=False, formatter_class=analyze.HelpFormatter)
    parser.add_argument("--configs", nargs="+", type=config_argument,
                        default=[config_argument(c) for c in DEFAULT_CONFIGS],
                        help="build_unet arguments over MODEL_CONFIG, one JSON object each "
                             f"(default: {' '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--precisions", nargs="+", choices=analyze.PRECISIONS[1:], default=["float32"],
                        help="number formats to time each network in")
    parser.add_argument("--batch", type=int, default=BATCH, help="digits per pass")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed rounds (the median is printed)")
    args = parser.parse_args()
    if args.batch < 1 or args.repeats < 1:
        parser.error("--batch and --repeats must be at least 1")

    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((args.batch, 28, 28, 1)).astype("float32"),
              np.full((args.batch,), 0.7, "float32"),  # a mid-schedule noise angle
              (np.arange(args.batch) % (train_diffusion.NULL_LABEL + 1)).astype("int32")]
    passes = {}
    for config in args.configs:
        network = train_diffusion.build_unet(**{**train_diffusion.MODEL_CONFIG, **config})
        told = {"ink": np.full((args.batch,), 0.13, "float32"),  # a typical digit's share of the page
                "estimate": np.zeros_like(inputs[0])}
        inputs_here = inputs + [told[name] for name in told if train_diffusion.takes_input(network, name)]
        for precision in args.precisions:
            run = tf.function(analyze.network_in_precision(network, precision))
            run(inputs_here, training=False)  # tracing is not a pass
            passes[json.dumps(config), precision] = (run, inputs_here)

    seconds = {key: [] for key in passes}
    for _ in range(args.repeats):
        for key, (run, inputs_here) in passes.items():
            start = time.perf_counter()
            np.asarray(run(inputs_here, training=False))
            seconds[key].append(time.perf_counter() - start)

    print(f"one pass over {args.batch:,} digits, median of {args.repeats} ({analyze.hardware_summary()})")
    first = None
    for (config, precision), times in seconds.items():
        median = float(np.median(times))
        first = first or median
        print(f"  {config:<45} {precision:<9} {median:7.3f} s  {median / first:5.2f}x")


if __name__ == "__main__":
    main()
