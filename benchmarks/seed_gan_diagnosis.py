"""Why the seed repository's GAN never learned: rebuild its setup, train it, measure it.

    python benchmarks/seed_gan_diagnosis.py               # ~10 min on 2 idle CPU cores
    python benchmarks/seed_gan_diagnosis.py --steps 200   # quicker look

The seed's README blamed a discriminator that learns too fast and slowed it down (D learning
rate 4x below G's, two G steps per D step). This trains the seed's unconditional setup and
two variants for the same number of steps, each changing one thing, and prints every
--every steps: D loss, G loss, D's accuracy on real and on fake digits; at the end, how
many generated digits the shipped classifier reads with >= 90% confidence, and MNIST-FID.

  seed       the seed's setup: BatchNorm in D; real and fake digits in separate D calls;
             D's step draws fakes with G in inference mode, G's step scores them with D in
             inference mode; sigmoid + BCE; Adam lr D 5e-5, G 2e-4; 2 G steps per D step;
             batch 64.
  same-mode  as seed, but both networks run in training mode in both steps, so each
             network is trained against the other as it actually behaves.
  no-bn      as same-mode, and D has no BatchNorm, so it must judge each digit on its own
             instead of a batch's statistics.

The architectures are rebuilt from the seed's description (G: dense 7x7x256, two stride-2
transposed convolutions with BatchNorm, tanh; D: three stride-2 convolutions, BatchNorm after
the last two, dense sigmoid).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402

NOISE_DIM = 100
BATCH_SIZE = 64
VARIANTS = ("seed", "same-mode", "no-bn")


def build_seed_generator():
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((NOISE_DIM,)),
        layers.Dense(7 * 7 * 256, activation="relu"), layers.Reshape((7, 7, 256)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), layers.BatchNormalization(), layers.ReLU(),
        layers.Conv2DTranspose(64, 4, strides=2, padding="same"), layers.BatchNormalization(), layers.ReLU(),
        layers.Conv2DTranspose(1, 3, padding="same", activation="tanh")])


def build_seed_discriminator(batch_norm=True):
    import keras
    from keras import layers

    norm = layers.BatchNormalization if batch_norm else (lambda: layers.Identity())
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(64, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2D(128, 4, strides=2, padding="same"), norm(), layers.LeakyReLU(0.2),
        layers.Conv2D(256, 4, strides=2, padding="same"), norm(), layers.LeakyReLU(0.2),
        layers.Flatten(), layers.Dense(1, activation="sigmoid")])


def make_steps(variant):
    import keras
    import tensorflow as tf

    generator = build_seed_generator()
    discriminator = build_seed_discriminator(batch_norm=variant != "no-bn")
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    d_opt = keras.optimizers.Adam(5e-5, beta_1=0.5)
    bce = keras.losses.BinaryCrossentropy()
    seed_modes = variant == "seed"

    @tf.function
    def d_step(real):
        noise = tf.random.normal((tf.shape(real)[0], NOISE_DIM))
        fake = generator(noise, training=not seed_modes)
        with tf.GradientTape() as tape:
            p_real = discriminator(real, training=True)
            p_fake = discriminator(fake, training=True)
            loss = bce(tf.ones_like(p_real), p_real) + bce(tf.zeros_like(p_fake), p_fake)
        d_opt.apply_gradients(zip(tape.gradient(loss, discriminator.trainable_variables),
                                  discriminator.trainable_variables))
        # What D really believes, judged as it is used in G's step (the seed: inference mode).
        judge_real = discriminator(real, training=not seed_modes)
        judge_fake = discriminator(fake, training=not seed_modes)
        return (loss, tf.reduce_mean(tf.cast(p_real > 0.5, tf.float32)),
                tf.reduce_mean(tf.cast(p_fake < 0.5, tf.float32)),
                tf.reduce_mean(tf.cast(judge_real > 0.5, tf.float32)),
                tf.reduce_mean(tf.cast(judge_fake < 0.5, tf.float32)))

    @tf.function
    def g_step():
        noise = tf.random.normal((BATCH_SIZE, NOISE_DIM))
        with tf.GradientTape() as tape:
            p_fake = discriminator(generator(noise, training=True), training=not seed_modes)
            loss = bce(tf.ones_like(p_fake), p_fake)
        g_opt.apply_gradients(zip(tape.gradient(loss, generator.trainable_variables),
                                  generator.trainable_variables))
        return loss

    return generator, d_step, g_step


def run(variant, real_images, steps, every, metrics):
    import tensorflow as tf

    generator, d_step, g_step = make_steps(variant)
    ds = iter(tf.data.Dataset.from_tensor_slices(real_images).shuffle(len(real_images), seed=0).repeat()
              .batch(BATCH_SIZE).map(analyze.to_signed_unit))
    print(f"\n== {variant}")
    print(f"{'step':>6} {'D loss':>7} {'G loss':>7} {'D acc real':>10} {'D acc fake':>10} "
          f"{'(as G sees D) real':>18} {'fake':>6}")
    log = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        d_loss, acc_real, acc_fake, judged_real, judged_fake = d_step(next(ds))
        g_loss = (g_step() + g_step()) / 2
        log.append([float(v) for v in (d_loss, g_loss, acc_real, acc_fake, judged_real, judged_fake)])
        if step % every == 0:
            m = np.mean(log[-every:], axis=0)
            print(f"{step:>6} {m[0]:>7.3f} {m[1]:>7.3f} {m[2]:>10.1%} {m[3]:>10.1%} {m[4]:>18.1%} {m[5]:>6.1%}")
    images = analyze.from_signed_unit(generator(tf.random.normal((1000, NOISE_DIM)), training=False))
    probabilities = analyze.classify(metrics.classifier, images)
    confident = probabilities.max(1) >= 0.9
    digits_drawn = np.bincount(probabilities.argmax(1)[confident], minlength=10)
    fid = analyze.frechet_distance(analyze.features(metrics.extractor, images), metrics.reference)
    print(f"after {steps} steps ({time.perf_counter() - start:.0f} s): {confident.mean():.1%} of 1,000 samples "
          f"read as a digit with >= 90% confidence, covering {int((digits_drawn >= 10).sum())} of 10 digits "
          f"(most common digit: {digits_drawn.max() / max(confident.sum(), 1):.0%} of them); MNIST-FID {fid:.1f}")
    return images


def main():
    parser = argparse.ArgumentParser(description="Reproduce and measure the seed GAN's failure.",
                                     allow_abbrev=False, formatter_class=analyze.HelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="D steps per variant (each with 2 G steps)")
    parser.add_argument("--every", type=int, default=100, help="print averages every this many steps")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="which set-ups to train and compare, each for --steps")
    parser.add_argument("--seed", type=analyze.seed_argument, default=0, help="random seed")
    parser.add_argument("--figures-dir", type=Path, default=analyze.FIGURES_DIR,
                        help="where the samples figure (seed_gan_diagnosis.png) goes")
    args = parser.parse_args()
    if args.steps < 1 or args.every < 1:
        parser.error("--steps and --every must be at least 1")

    try:
        analyze.set_seed(args.seed)
        train_images, _ = analyze.load_digits_csv(analyze.TRAIN_CSV)
        metrics = analyze.DigitMetrics.of_shipped_classifier()
    except analyze.DataError as exc:
        analyze.fail(exc)
    floor = metrics.real_floor(100)["fid"]
    print(f"real-vs-real MNIST-FID floor at 1,000 digits: {floor:.1f}")
    rows = [run(variant, train_images, args.steps, args.every, metrics)[:10] for variant in args.variants]
    analyze.save_sample_rows(rows, args.figures_dir / "seed_gan_diagnosis.png", args.variants, "seed GAN variants: 10 samples each", column_titles=None)


if __name__ == "__main__":
    main()
