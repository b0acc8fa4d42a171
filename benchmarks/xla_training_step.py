"""How much XLA (`jit_compile=True`) speeds up the generators' training steps on this machine.

    python benchmarks/xla_training_step.py                 # diffusion and GAN, 40 timed steps each
    python benchmarks/xla_training_step.py --models GAN --steps 10

Keras turns XLA off on machines without a GPU, and the generator scripts keep that default
(benchmarks/README, "XLA", gives its figures). For each model this builds the trainer its script
builds (fresh weights), compiles it without and then with XLA, runs a few warm-up batches (tracing and compiling are not
training), and times --steps batches of 128 random digits. Time it on a quiet machine.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402  (before TensorFlow: it chooses TensorFlow's CPU kernels)

BATCH_SIZE = 128
WARMUP_STEPS = 3


def trainers():
    """MODEL_NAME -> a function making the trainer its script trains, compiled as it is there
    but for jit_compile."""
    import train_diffusion
    import train_gan

    def diffusion(jit):
        model = train_diffusion.make_diffusion(train_diffusion.MODEL_CONFIG)
        model.compile(optimizer=model.optimizer, jit_compile=jit)
        return model

    def gan(jit):
        model = train_gan.make_gan(train_gan.MODEL_CONFIG)
        model.compile(jit_compile=jit)
        return model

    return {train_diffusion.MODEL_NAME: diffusion, train_gan.MODEL_NAME: gan}


def seconds_per_step(model, steps, seed):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, ((steps + WARMUP_STEPS) * BATCH_SIZE, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, analyze.NUM_CLASSES, len(images))
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH_SIZE)
    model.fit(batches.take(WARMUP_STEPS), epochs=1, shuffle=False, verbose=0)  # timing, not learning
    start = time.perf_counter()
    model.fit(batches.skip(WARMUP_STEPS), epochs=1, shuffle=False, verbose=0)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description="Time the generators' training steps without and with XLA.",
                                     allow_abbrev=False, formatter_class=analyze.HelpFormatter)
    parser.add_argument("--models", nargs="+", help="only these (diffusion, GAN; default: both)")
    parser.add_argument("--steps", type=int, default=40, help="timed batches of 128 per setting")
    parser.add_argument("--seed", type=analyze.seed_argument, default=0, help="random seed")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    makers = trainers()
    unknown = set(args.models or ()) - set(makers)
    if unknown:
        parser.error(f"unknown model {', '.join(sorted(unknown))}; choose from {', '.join(makers)}")

    analyze.set_seed(args.seed)
    print(f"{args.steps} batches of {BATCH_SIZE} per setting, after {WARMUP_STEPS} warm-up batches; "
          f"{analyze.hardware_summary()}")
    print("| model | without XLA | with XLA | speed-up |")
    print("|---|---|---|---|")
    for name, make in makers.items():
        if args.models and name not in args.models:
            continue
        plain, compiled = (seconds_per_step(make(jit), args.steps, args.seed) for jit in (False, True))
        print(f"| {name} | {plain * 1000:,.0f} ms | {compiled * 1000:,.0f} ms | {plain / compiled:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
