"""Train a class-conditional GAN on dataset/Train.csv, or draw digits with it.

    python train_gan.py                       # train (continues if weights exist)
    python train_gan.py --from-scratch        # start over
    python train_gan.py --generate --digit 3 --num-per-digit 100 --output threes.npz

Why this one learns when the seed's did not (README, "Why the seed's GAN never learned"):
the discriminator has no BatchNorm, so it judges each digit on its own instead of telling
real and fake batches apart by their statistics; both networks run in the same mode in
both steps, and real and fake digits go through D in one batch, so each network optimizes
against the other as it really is, with equal learning rates and one step each. As in
AC-GAN, the discriminator has two heads: "is this real?" and "which digit is this?"
(learned from real digits only, so fakes cannot teach it to accept them); the generator is
rewarded for both, which is what makes it draw the digit it was asked for.

Each epoch prints one health line (D and G loss, D accuracy on real and on fake digits)
under Keras' progress bar, writes generated_digits/gan_progress/epoch_NNN.png from fixed
noise, and atomically saves weights/gan_generator.weights.h5 and
gan_discriminator.weights.h5, each with its optimizer state.
"""

import argparse
from pathlib import Path

import numpy as np

import analyze
from analyze import DataError

# -- data ---------------------------------------------------------------------------------
TRAIN_CSV = analyze.TRAIN_CSV

# -- model --------------------------------------------------------------------------------
MODEL_NAME = "GAN"
WEIGHTS_DIR = analyze.WEIGHTS_DIR
GENERATOR_WEIGHTS = WEIGHTS_DIR / "gan_generator.weights.h5"
MODEL_CONFIG = {"noise_dim": 64, "width": 64}

# -- training -----------------------------------------------------------------------------
EPOCHS = 20
BATCH_SIZE = 128
LEARNING_RATE = 2e-4
BETA_1 = 0.5
CLASS_WEIGHT = 1.0  # weight of the discriminator's digit-classifier loss, for D and for G
SEED = 42
DRY_RUN_BATCHES = 2

# -- sampling -----------------------------------------------------------------------------
NUM_PER_DIGIT = 16
GENERATION_BATCH = 2000


def weight_paths(weights_dir):
    weights_dir = Path(weights_dir)
    return weights_dir / "gan_generator.weights.h5", weights_dir / "gan_discriminator.weights.h5"


def build_generator(noise_dim=64, width=64):
    """(noise, label) -> digit in [-1, 1], 28x28x1."""
    import keras
    from keras import layers

    noise = keras.Input((noise_dim,), name="noise")
    label = keras.Input((), dtype="int32", name="label")
    embedded = layers.Flatten()(layers.Embedding(analyze.NUM_CLASSES, 32)(label))
    x = layers.Concatenate()([noise, embedded])
    x = layers.Dense(7 * 7 * 2 * width, use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Reshape((7, 7, 2 * width))(x)
    for filters in (width, width // 2):  # 7 -> 14 -> 28
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    image = layers.Conv2D(1, 3, padding="same", activation="tanh")(x)
    return keras.Model([noise, label], image, name="generator")


def build_discriminator(width=64, **_):
    """digit in [-1, 1] -> (realness logit, 10 digit logits), the AC-GAN arrangement.

    No BatchNorm: each digit is judged on its own, never by its batch's statistics. Dropout
    keeps D from memorizing the training digits and overpowering G. The flattened 7x7 map
    lets both heads see the whole digit's shape, not just local texture.
    """
    import keras
    from keras import layers

    image = keras.Input((28, 28, 1), name="image")
    x = image
    for filters in (width, 2 * width):  # 28 -> 14 -> 7
        x = layers.Conv2D(filters, 4, strides=2, padding="same")(x)
        x = layers.Dropout(0.3)(layers.LeakyReLU(0.2)(x))
    features = layers.Flatten()(x)
    realness = layers.Dense(1, name="realness")(features)
    digit_logits = layers.Dense(analyze.NUM_CLASSES, name="digit")(features)
    return keras.Model(image, [realness, digit_logits], name="discriminator")


def make_gan(config):
    """The trainer: generator and discriminator, each compiled with its own Adam (so each
    weights file carries its optimizer state), and a train_step doing one D and one G step."""
    import keras
    import tensorflow as tf

    def adam():
        return keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)

    class GAN(keras.Model):
        def __init__(self):
            super().__init__()
            self.generator = build_generator(**config)
            self.discriminator = build_discriminator(**config)
            self.noise_dim = config["noise_dim"]
            for network in (self.generator, self.discriminator):
                network.compile(optimizer=adam())
                network.optimizer.build(network.trainable_variables)
            self.trackers = {name: keras.metrics.Mean(name=name)
                             for name in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")}
            self.built = True

        @property
        def metrics(self):
            return list(self.trackers.values())

        def train_step(self, data):
            images, labels = data
            labels = tf.cast(labels, tf.int32)
            real = tf.cast(images, tf.float32)[..., None] / 127.5 - 1.0
            n = tf.shape(real)[0]
            softplus = tf.nn.softplus  # BCE with logits: -log(sigmoid(x)) = softplus(-x)
            digit_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

            noise = tf.random.normal((n, self.noise_dim))
            with tf.GradientTape() as tape:
                # Real and fake pass through D together in one batch, in training mode,
                # exactly as in the generator step below.
                fake = self.generator([noise, labels], training=True)
                realness, digits = self.discriminator(tf.concat([real, fake], 0), training=True)
                real_logits, fake_logits = realness[:n], realness[n:]
                # The classifier head learns digits from real images only, so fakes cannot
                # teach it to accept them.
                d_loss = (tf.reduce_mean(softplus(-real_logits)) + tf.reduce_mean(softplus(fake_logits))
                          + CLASS_WEIGHT * digit_loss(labels, digits[:n]))
            d_vars = self.discriminator.trainable_variables
            self.discriminator.optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars))

            noise = tf.random.normal((n, self.noise_dim))
            with tf.GradientTape() as tape:
                fake = self.generator([noise, labels], training=True)
                realness, digits = self.discriminator(fake, training=True)
                g_loss = tf.reduce_mean(softplus(-realness)) + CLASS_WEIGHT * digit_loss(labels, digits)
            g_vars = self.generator.trainable_variables
            self.generator.optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars))

            for name, value in (("d_loss", d_loss), ("g_loss", g_loss),
                                ("d_acc_real", tf.reduce_mean(tf.cast(real_logits > 0, tf.float32))),
                                ("d_acc_fake", tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32)))):
                self.trackers[name].update_state(value)
            return {name: tracker.result() for name, tracker in self.trackers.items()}

    return GAN()


def load_generator(weights_path, config):
    generator = build_generator(**config)
    return analyze.load_weights_or_fail(generator, weights_path, "python train_gan.py")


def generate(generator, labels, seed, noise_dim, noise=None):
    """uint8 digits (0 = background) for the requested labels; one call per 2,000."""
    if noise is None:
        noise = np.random.default_rng(seed).standard_normal((len(labels), noise_dim), dtype=np.float32)
    out = [generator([noise[i:i + GENERATION_BATCH], labels[i:i + GENERATION_BATCH]], training=False)
           for i in range(0, len(labels), GENERATION_BATCH)]
    images = np.concatenate([np.asarray(o) for o in out])[..., 0]
    return np.round((images + 1) * 127.5).clip(0, 255).astype(np.uint8)


def config_from_record(weights_path):
    record = analyze.read_record(weights_path)
    return (record or {}).get("config", MODEL_CONFIG), record


def load_sampler(weights_path=GENERATOR_WEIGHTS):
    """For analyze.py: draw(labels, seed) -> uint8 digits, with the shipped generator."""
    config, _ = config_from_record(weights_path)
    generator = load_generator(weights_path, config)
    return lambda labels, seed: generate(generator, labels, seed, config["noise_dim"])


def train(args, gan, record, config):
    images, labels = analyze.load_digits_csv(args.csv)
    print(f"training on {len(images):,} digits from {analyze.display_path(args.csv)}")
    batches = analyze.training_batches(images, labels, args.batch_size, args.seed,
                                       DRY_RUN_BATCHES if args.dry_run else None)
    g_path, d_path = weight_paths(args.weights_dir)
    fixed_labels = analyze.requested_labels(None, 10)
    fixed_noise = np.random.default_rng(SEED).standard_normal((len(fixed_labels), config["noise_dim"]),
                                                              dtype=np.float32)

    def checkpoint(epoch):
        analyze.save_weights_atomic(gan.generator, g_path)
        analyze.save_weights_atomic(gan.discriminator, d_path)
        analyze.write_json_atomic(record, analyze.record_path(g_path))
        images = generate(gan.generator, fixed_labels, SEED, config["noise_dim"], noise=fixed_noise)
        grid = np.stack([images[fixed_labels == d] for d in range(10)], 1).reshape(-1, 28, 28)
        analyze.save_image_grid(grid, Path(args.figures_dir) / "gan_progress" / f"epoch_{epoch:03d}.png",
                                columns=10, title=f"GAN after epoch {epoch} (fixed noise; a column per digit)")

    epochs = record["training"].get("epochs", 0) + 1 if args.dry_run else args.epochs
    gan.compile()
    analyze.fit_resumably(gan, batches, record, epochs,
                          {"csv": analyze.display_path(args.csv), "batch_size": args.batch_size,
                           "seed": args.seed}, checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train the conditional GAN and/or draw digits with it.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--generate", action="store_true", help="only draw digits (no training)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="train new networks instead of continuing from the saved ones")
    parser.add_argument("--digit", type=int, help="generate only this digit (default: all ten)")
    parser.add_argument("--num-per-digit", type=int, default=NUM_PER_DIGIT, help="samples per digit")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="train until this many epochs in total (continuing counts on)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="training batch size")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (same seed, same digits)")
    parser.add_argument("--output", type=Path, help="also save the samples to this .npz")
    parser.add_argument("--csv", type=Path, default=TRAIN_CSV, help="training CSV")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR,
                        help="where gan_generator/gan_discriminator.weights.h5 live")
    parser.add_argument("--figures-dir", type=Path, default=analyze.FIGURES_DIR,
                        help="where gan_generated_<d>.png and gan_progress/ go")
    parser.add_argument("--dry-run", action="store_true",
                        help=f"train {DRY_RUN_BATCHES} batches for one epoch")
    args = parser.parse_args(argv)
    if args.digit is not None and not 0 <= args.digit <= 9:
        parser.error(f"--digit must be 0-9, got {args.digit}")
    for name in ("num_per_digit", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.output is not None and args.output.suffix != ".npz":
        parser.error("--output must end in .npz")
    if args.generate and args.from_scratch:
        parser.error("--generate and --from-scratch exclude each other")
    return args


def main(argv=None):
    args = parse_args(argv)
    g_path, d_path = weight_paths(args.weights_dir)
    try:
        analyze.set_seed(args.seed)
        if args.generate:
            config, _ = config_from_record(g_path)
            generator = load_generator(g_path, config)
        else:
            resume = not args.from_scratch and g_path.exists()
            if args.from_scratch and not args.dry_run:
                for path in (g_path, d_path):
                    analyze.keep_previous(path)
            config, record = config_from_record(g_path) if resume else (dict(MODEL_CONFIG), None)
            gan = make_gan(config)
            if resume:
                analyze.load_weights_or_fail(gan.generator, g_path, "python train_gan.py --from-scratch")
                analyze.load_weights_or_fail(gan.discriminator, d_path, "python train_gan.py --from-scratch")
                print(f"continuing from {g_path} ({record['training'].get('epochs', 0)} epochs so far)"
                      if record else f"continuing from {g_path}")
            record = record if resume and record else {
                "builder": "train_gan.build_generator", "config": config, "training": {}}
            train(args, gan, record, config)
            generator = gan.generator

        analyze.draw_and_save(lambda labels: generate(generator, labels, args.seed, config["noise_dim"]),
                              analyze.requested_labels(args.digit, args.num_per_digit), "gan_generated",
                              args.figures_dir, args.output)
    except DataError as exc:
        analyze.fail(exc)
    except KeyboardInterrupt:
        analyze.fail(f"interrupted; {g_path.parent} holds the last finished epoch "
                     "(run the same command to continue)", code=130)


if __name__ == "__main__":
    main()
