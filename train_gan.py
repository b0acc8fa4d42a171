"""Train a class-conditional GAN on dataset/Train.csv, or draw digits with it.

    python train_gan.py                       # train: continue the checkpoint, or start one
    python train_gan.py --from-scratch        # start over (= --mode 0)
    python train_gan.py --generate --digit 3 --num-per-digit 100 --output threes.npz   # = --mode 2

A generator turns noise and a digit into a picture; a discriminator learns to tell real
digits from the generator's, and the generator learns to fool it, one step each in turn.
The discriminator is told the digit by projection (Miyato & Koyama 2018): one logit for "is
this a real picture of digit y?", so a fake of the wrong digit, or of the right one in an
unreal style, is simply a fake. A light digit head (class_weight) fixes the few digits read
as another. It has no BatchNorm, so it judges each digit on its own rather than by its
batch's statistics, and real and fake digits go through it in one batch, in the same mode in
both steps (README.md, "Why the seed's GAN never learned"). A moving average of the
generator's weights draws the digits.

Each epoch prints D and G loss and D's accuracy on real and fake digits under Keras'
progress bar, draws generated_digits/gan_progress/epoch_NNN.png from fixed noise, and
atomically saves weights/gan_generator.weights.h5 and gan_discriminator.weights.h5 (each
with its optimizer state) and gan_generator_ema.weights.h5, the moving average.
"""

from pathlib import Path

import numpy as np

import analyze

# -- model (the generator contract: analyze.GENERATOR_SCRIPTS) -----------------------------
MODEL_NAME = "GAN"
# The generator and discriminator being trained (each with its optimizer state), and the
# moving average of the generator's weights, which draws the digits.
WEIGHT_FILES = ("gan_generator.weights.h5", "gan_discriminator.weights.h5", "gan_generator_ema.weights.h5")
MAKE_COMMAND = "python train_gan.py --from-scratch"
BUILDER = "train_gan.build_generator"
# class_weight: how much G is rewarded for being read as the requested digit by D's digit
# head, which learns digits from real pictures only; 0 = no head.
MODEL_CONFIG = {"noise_dim": 64, "width": 64, "class_weight": 0.2}

# -- training -----------------------------------------------------------------------------
EPOCHS = 30  # the shipped weights' run; fewer fall short of real digits' variety (benchmarks/README.md)
BATCH_SIZE = 128
LEARNING_RATE = 2e-4
BETA_1 = 0.5
EMA_DECAY = 0.999  # of the sampled generator's weights: an average over the last ~1,000 steps
SEED = 42
DRY_RUN_BATCHES = 2

# -- sampling -----------------------------------------------------------------------------
NUM_PER_DIGIT = 16
GENERATION_BATCH = 2000


# == Model ================================================================================

def build_generator(noise_dim=64, width=64, **_):
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


def build_discriminator(width=64, class_weight=0.2, **_):
    """(digit in [-1, 1], label) -> "a real digit of that label?" logit, and 10 digit logits
    too if class_weight > 0.

    No BatchNorm: each digit is judged on its own, never by its batch's statistics. Dropout
    keeps D from memorizing the training digits and overpowering G. The flattened 7x7 map
    lets D see the whole digit's shape, not just local texture."""
    import keras
    from keras import layers

    if class_weight < 0:
        raise ValueError(f"class_weight must be >= 0, got {class_weight}")
    image = keras.Input((28, 28, 1), name="image")
    label = keras.Input((), dtype="int32", name="label")
    x = image
    for filters in (width, 2 * width):  # 28 -> 14 -> 7
        x = layers.Conv2D(filters, 4, strides=2, padding="same")(x)
        x = layers.Dropout(0.3)(layers.LeakyReLU(0.2)(x))
    features = layers.Flatten()(x)
    realness = layers.Dense(1, name="realness")(features)
    digit_logits = [layers.Dense(analyze.NUM_CLASSES, name="digit")(features)] if class_weight > 0 else []
    # Projection: an unconditional score plus the inner product of the features with the digit's vector.
    digit_vector = layers.Flatten()(layers.Embedding(analyze.NUM_CLASSES, features.shape[-1], name="projection")(label))
    realness = realness + layers.Dot(axes=1)([features, digit_vector])
    return keras.Model([image, label], [realness, *digit_logits] if digit_logits else realness, name="discriminator")


def make_gan(config):
    """The trainer: generator and discriminator, each compiled with its own Adam (so each
    weights file carries its optimizer state), a train_step doing one D and one G step, and
    ema_generator, the moving average of the generator's weights (BatchNorm statistics
    included) after each step: the generator shifts with every step of the two-player game,
    and the average smooths that out."""
    import keras
    import tensorflow as tf

    def adam():
        return keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)

    class GAN(keras.Model):
        def __init__(self):
            super().__init__()
            self.generator = build_generator(**config)
            self.discriminator = build_discriminator(**config)
            self.ema_generator = build_generator(**config)
            self.ema_generator.set_weights(self.generator.get_weights())
            self.noise_dim = config["noise_dim"]
            self.class_weight = config["class_weight"]
            for network in (self.generator, self.discriminator):
                network.compile(optimizer=adam())
                network.optimizer.build(network.trainable_variables)
            self.trackers = {name: keras.metrics.Mean(name=name)
                             for name in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")}
            self.built = True

        @property
        def metrics(self):
            return list(self.trackers.values())

        def judge(self, images, labels):
            """(realness logits, digit logits or None): D in training mode, as in both steps."""
            outputs = self.discriminator([images, labels], training=True)
            return tuple(outputs) if self.class_weight > 0 else (outputs, None)

        def train_step(self, data):
            images, labels = data
            labels = tf.cast(labels, tf.int32)
            real = analyze.to_signed_unit(images)
            n = tf.shape(real)[0]
            softplus = tf.nn.softplus  # BCE with logits: -log(sigmoid(x)) = softplus(-x)
            digit_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

            noise = tf.random.normal((n, self.noise_dim))
            with tf.GradientTape() as tape:
                # Real and fake pass through D together in one batch, in training mode,
                # exactly as in the generator step below.
                fake = self.generator([noise, labels], training=True)
                realness, digits = self.judge(tf.concat([real, fake], 0), tf.concat([labels, labels], 0))
                real_logits, fake_logits = realness[:n], realness[n:]
                d_loss = tf.reduce_mean(softplus(-real_logits)) + tf.reduce_mean(softplus(fake_logits))
                if digits is not None:
                    # The classifier head learns digits from real images only, so fakes
                    # cannot teach it to accept them.
                    d_loss += digit_loss(labels, digits[:n])
            d_vars = self.discriminator.trainable_variables
            self.discriminator.optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars))

            noise = tf.random.normal((n, self.noise_dim))
            with tf.GradientTape() as tape:
                fake = self.generator([noise, labels], training=True)
                realness, digits = self.judge(fake, labels)
                g_loss = tf.reduce_mean(softplus(-realness))
                if digits is not None:
                    g_loss += self.class_weight * digit_loss(labels, digits)
            g_vars = self.generator.trainable_variables
            self.generator.optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars))
            analyze.update_moving_average(self.generator, self.ema_generator, EMA_DECAY,
                                          self.generator.optimizer.iterations)

            for name, value in (("d_loss", d_loss), ("g_loss", g_loss),
                                ("d_acc_real", tf.reduce_mean(tf.cast(real_logits > 0, tf.float32))),
                                ("d_acc_fake", tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32)))):
                self.trackers[name].update_state(value)
            return {name: tracker.result() for name, tracker in self.trackers.items()}

    return GAN()


# == Sampling =============================================================================

class Sampler:
    """The generator contract's sampler (analyze.GENERATOR_SCRIPTS): the seed fixes the noise."""

    def __init__(self, network):
        import tensorflow as tf

        self.network = network
        self.noise_dim = network.inputs[0].shape[-1]
        # A traced graph: faster than eager calls even with its tracing, for a 10,000-digit draw.
        self._generate = tf.function(self._forward, reduce_retracing=True)

    def _forward(self, noise, labels):
        import tensorflow as tf

        # A bfloat16 copy (analyze.network_in_precision) answers in bfloat16; pixels need float32.
        return tf.cast(self.network([noise, labels], training=False), tf.float32)

    def __call__(self, labels, seed=SEED, noise=None, progress=False):
        """uint8 digits (0 = background) for the requested labels; one call per 2,000.
        `progress` is the contract's; thousands of digits a second need no progress bar."""
        if noise is None:
            noise = np.random.default_rng(seed).standard_normal((len(labels), self.noise_dim), dtype=np.float32)
        labels = np.asarray(labels, np.int32)
        out = [self._generate(noise[i:i + GENERATION_BATCH], labels[i:i + GENERATION_BATCH])
               for i in range(0, len(labels), GENERATION_BATCH)]
        return analyze.from_signed_unit(np.concatenate([np.asarray(o) for o in out]))

    def with_steps(self, labels, seed=SEED):
        """A GAN draws in one step: its output is its only picture of the way there."""
        images = self(labels, seed)
        return images, images[None]


def load_sampler(weights_dir=analyze.WEIGHTS_DIR, precision="auto"):
    """The generator contract: a Sampler on the saved moving-average generator."""
    run = analyze.start_or_resume(2, weights_dir, WEIGHT_FILES, MODEL_CONFIG, BUILDER, MAKE_COMMAND)
    generator_path, _, average_path = run.sources
    generator = analyze.build_from_record(lambda config: build_generator(**config), run.config,
                                          generator_path, MAKE_COMMAND)
    analyze.load_weights_or_fail(generator, average_path, MAKE_COMMAND)
    return Sampler(analyze.network_in_precision(generator, precision))


# == Training and the command line ========================================================

def train(args, gan, run):
    images, labels = analyze.load_digits_csv(args.csv)
    print(f"training on {len(images):,} digits from {analyze.display_path(args.csv)}")
    batches = analyze.training_batches((images, labels), args.batch_size, args.seed,
                                       DRY_RUN_BATCHES if args.dry_run else None)
    g_path, d_path, ema_path = run.targets
    record = run.record
    fixed_labels = analyze.requested_labels(None, 10)
    fixed_noise = np.random.default_rng(SEED).standard_normal((len(fixed_labels), run.config["noise_dim"]),
                                                              dtype=np.float32)

    def checkpoint(epoch):
        analyze.save_weights_atomic(gan.generator, g_path)
        analyze.save_weights_atomic(gan.discriminator, d_path)
        analyze.save_weights_atomic(gan.ema_generator, ema_path)
        analyze.write_json_atomic(record, analyze.record_path(g_path))
        images = Sampler(gan.ema_generator)(fixed_labels, noise=fixed_noise)
        grid = np.stack([images[fixed_labels == d] for d in range(10)], 1).reshape(-1, 28, 28)
        analyze.save_image_grid(grid, Path(args.figures_dir) / "gan_progress" / f"epoch_{epoch:03d}.png",
                                columns=10, title=f"GAN after epoch {epoch} (fixed noise; a column per digit)")

    epochs = record["training"].get("epochs", 0) + 1 if args.dry_run else args.epochs
    record["training"]["ema_decay"] = EMA_DECAY
    gan.compile()
    analyze.fit_resumably(gan, batches, record, epochs, args.stop_after,
                          {"csv": analyze.display_path(args.csv), "batch_size": args.batch_size,
                           "seed": args.seed}, checkpoint)


def parse_args(argv=None):
    parser = analyze.generator_parser(
        "Train the conditional GAN and/or draw digits with it.", no_mode="continue the checkpoint there is, else start one",
        num_per_digit=NUM_PER_DIGIT, epochs=EPOCHS, batch_size=BATCH_SIZE, seed=SEED,
        figures="gan_generated_<d>.png and gan_progress/",
        dry_run=f"train {DRY_RUN_BATCHES} batches for one epoch; it never writes into weights/ nor over weights a real run made")
    return analyze.parse_generator_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    mode = args.mode
    if mode is None:  # no mode given: continue the checkpoint there is, or start one
        mode = 1 if (args.weights_dir / WEIGHT_FILES[0]).exists() else 0
    with analyze.generator_errors() as session:
        run = session.run = analyze.start_or_resume(mode, args.weights_dir, WEIGHT_FILES, MODEL_CONFIG,
                                                    BUILDER, MAKE_COMMAND, args.dry_run)
        analyze.set_seed(args.seed)
        if run.mode == 2:
            sampler = load_sampler(args.weights_dir, args.precision)
        else:
            gan = analyze.build_from_record(make_gan, run.config, args.weights_dir / WEIGHT_FILES[0], MAKE_COMMAND)
            if run.sources:
                for network, path in zip((gan.generator, gan.discriminator, gan.ema_generator), run.sources):
                    analyze.load_weights_or_fail(network, path, MAKE_COMMAND)
                print(f"continuing from {analyze.display_path(run.sources[0])} "
                      f"({run.record['training'].get('epochs', 0)} epochs so far)")
            train(args, gan, run)
            sampler = Sampler(analyze.network_in_precision(gan.ema_generator, args.precision))

        analyze.draw_and_save(lambda labels: sampler(labels, args.seed), args, "gan_generated")


if __name__ == "__main__":
    main()
