"""Train a class-conditional diffusion model on dataset/Train.csv and draw digits with it.

    python train_diffusion.py             # asks: 0 = train from scratch, 1 = continue, 2 = generate only
    python train_diffusion.py --mode 2 --digit 7 --num-per-digit 64 --output sevens.npz
    python train_diffusion.py --mode 1    # continue an interrupted run from its last finished epoch
    python train_diffusion.py --mode 0 --distill  # teach weights/distilled to draw in 4 passes

A small U-Net is shown digits buried in noise, told how much noise and which digit, and
learns to predict v, a mix of the noise and the digit (v-prediction on a cosine schedule).
One label in ten is hidden from it, so it also learns to draw without being told the digit:
classifier-free guidance pushes each step away from that unconditional guess, and
autoguidance away from a weaker network of its own kind (weights/autoguide). A moving
average (EMA) of the weights draws, with DPM-Solver++(2M): 17 network passes per digit.
Distillation trains a copy of it on the digits that sampler drew, each with the noise it
started from, so that 4 plain steps (4 passes) find the same digit. README.md explains each idea.

Drawing writes generated_digits/ddim_generated_<d>.png (and --output an .npz); training writes
weights/diffusion_model.weights.h5, the checkpoint, and diffusion_ema.weights.h5, the EMA
network alone, atomically after every epoch: Ctrl-C loses at most the epoch in progress.
"""

import functools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import analyze
from analyze import DataError

# -- model (the generator contract: analyze.GENERATOR_SCRIPTS) -----------------------------
MODEL_NAME = "diffusion"
WEIGHT_FILES = ("diffusion_model.weights.h5", "diffusion_ema.weights.h5")  # checkpoint, drawing network
MAKE_COMMAND = "python train_diffusion.py --mode 0"
BUILDER = "train_diffusion.build_unet"
MODEL_CONFIG = {"widths": [64, 128], "embedding_dim": 128, "patch": 2}  # build_unet's arguments
NULL_LABEL = 10  # the "no digit" label classifier-free guidance needs

# -- training -----------------------------------------------------------------------------
EPOCHS = 60  # the shipped weights' schedule
BATCH_SIZE = 128
PEAK_LEARNING_RATE = 1e-3  # reached after WARMUP_EPOCHS, then a cosine decay to 0 at --epochs
WARMUP_EPOCHS = 1
LABEL_DROPOUT = 0.1
EMA_DECAY = 0.999
# "min-snr" (Min-SNR-gamma, Hang et al. 2023), the weak network's recipe, caps the weight of
# the least noisy levels, where the digit is almost given; "v" weighs every level alike.
LOSS_WEIGHTINGS = ("v", "min-snr")
MIN_SNR_GAMMA = 5.0
SEED = 42
DRY_RUN_BATCHES = 2

# -- distillation: a student that draws in DISTILLED_STEPS passes what the sampler draws in 17 --
DISTILLED_DIR = "distilled"  # the student's run, inside the weights folder of its teacher
DISTILL_COMMAND = "python train_diffusion.py --mode 0 --distill"
DISTILL_PAIRS = 60_000  # teacher digits to learn from, as many as MNIST has training digits
PAIRS_FILE = "teacher_pairs.npz"  # beside the student's weights; the noise is drawn again from the seed
DISTILL_EPOCHS = 12
DISTILL_LEARNING_RATE = 5e-4  # half a new run's peak: the student starts from its teacher
DISTILLED_STEPS = 4

# -- sampling -----------------------------------------------------------------------------
STEPS = 10
MIN_ANGLE, MAX_ANGLE = 0.02, math.pi / 2  # signal = cos(angle), noise = sin(angle)
# Where each kind of guidance acts, as noise-to-signal ratios tan(angle) in (low, high]: the
# 4th-5th and the 3rd-7th of 10 steps. Guiding firmly where the class is decided, and nowhere
# else, keeps more variety than gentle guidance everywhere (benchmarks/README.md).
GUIDANCE = 2.25
GUIDANCE_INTERVAL = (1.2, 2.5)
# Autoguidance (Karras et al. 2024): steer away from a weaker network of this kind, told the
# same digit, so it corrects what a weak model gets wrong without pulling every digit toward
# its class's most typical shape, as classifier-free guidance alone does.
AUTOGUIDANCE = 3.0  # 1 = off
AUTOGUIDANCE_INTERVAL = (0.6, 5.0)
WEAK_DIR = "autoguide"  # the weak network's run, inside the weights folder of the network it guides
WEAK_RECIPE = "--epochs 15 --stop-after 7 --loss-weighting min-snr"  # how the shipped one was made
# The network's estimate of blank paper is a mean over what could be there, a few grey levels
# above MNIST's exact 0: pixels at or below this level (of 255) are drawn as paper.
PAPER_LEVEL = 6
SAMPLER_DEFAULTS = {"steps": STEPS, "guidance": GUIDANCE, "guidance_interval": GUIDANCE_INTERVAL,
                    "autoguidance": AUTOGUIDANCE, "autoguidance_interval": AUTOGUIDANCE_INTERVAL,
                    "paper_level": PAPER_LEVEL}
# The student's guidance is in its weights: one plain pass per step.
DISTILLED_DEFAULTS = {**SAMPLER_DEFAULTS, "steps": DISTILLED_STEPS, "guidance": 1.0, "autoguidance": 1.0}
NUM_PER_DIGIT = 16
SAMPLING_BATCH = 500

MODES = {"0": "train from scratch", "1": "continue training", "2": "generate only"}


# == Model =================================================================================

def build_unet(widths=(64, 128), embedding_dim=128, patch=2):
    """U-Net: (noisy digit, noise angle, label 0-10) -> predicted v, 28x28x1.

    It works on 2x2 patches (28x28x1 folded into 14x14x4, unfolded at the end): on a CPU
    full-resolution convolutions would cost most of the time, and digits lose nothing by it.
    The noise level and the digit reach every residual block as a scale and a shift of its
    normalized features (adaptive group norm, Dhariwal & Nichol 2021), so the digit can switch
    features on and off rather than only nudge them."""
    import keras
    from keras import layers, ops

    def angle_features(angle):
        # Sinusoidal features of the angle at geometrically spaced frequencies.
        freqs = ops.exp(ops.linspace(0.0, math.log(1000.0), embedding_dim // 2))
        scaled = angle[:, None] * freqs[None, :]
        return ops.concatenate([ops.sin(scaled), ops.cos(scaled)], axis=-1)

    def res_block(x, emb, width):
        skip = x if x.shape[-1] == width else layers.Conv2D(width, 1)(x)
        h = layers.Activation("swish")(layers.GroupNormalization(8)(x))
        h = layers.Conv2D(width, 3, padding="same")(h)
        modulation = layers.Reshape((1, 1, 2 * width))(layers.Dense(2 * width)(emb))
        h = layers.GroupNormalization(8)(h) * (1 + modulation[..., :width]) + modulation[..., width:]
        h = layers.Activation("swish")(h)
        h = layers.Conv2D(width, 3, padding="same")(h)
        return h + skip

    noisy = keras.Input((28, 28, 1), name="noisy")
    angle = keras.Input((), name="angle")
    label = keras.Input((), dtype="int32", name="label")
    emb = layers.Lambda(angle_features, name="angle_features")(angle)
    emb = layers.Dense(embedding_dim, activation="swish")(emb)
    emb = emb + layers.Flatten()(layers.Embedding(NULL_LABEL + 1, embedding_dim)(label))
    emb = layers.Dense(embedding_dim, activation="swish")(emb)

    side = 28 // patch
    x = layers.Lambda(lambda t: ops.reshape(ops.transpose(ops.reshape(
        t, (-1, side, patch, side, patch, 1)), (0, 1, 3, 2, 4, 5)), (-1, side, side, patch * patch)),
        name="fold")(noisy)
    x = layers.Conv2D(widths[0], 3, padding="same")(x)
    skips = []
    for i, width in enumerate(widths):
        x = res_block(x, emb, width)
        skips.append(x)
        if i < len(widths) - 1:
            x = layers.AveragePooling2D(2)(x)
    x = res_block(x, emb, widths[-1])
    for i, width in reversed(list(enumerate(widths))):
        if i < len(widths) - 1:
            x = layers.UpSampling2D(interpolation="nearest")(x)
        x = res_block(layers.Concatenate()([x, skips[i]]), emb, width)
    x = layers.Activation("swish")(layers.GroupNormalization(8)(x))
    x = layers.Conv2D(patch * patch, 3, padding="same", kernel_initializer="zeros")(x)
    v = layers.Lambda(lambda t: ops.reshape(ops.transpose(ops.reshape(
        t, (-1, side, side, patch, patch)), (0, 1, 3, 2, 4)), (-1, 28, 28, 1)), name="unfold")(x)
    return keras.Model([noisy, angle, label], v, name="unet")


# == Training ==============================================================================

def learning_rate_schedule(steps_per_epoch, epochs, peak=PEAK_LEARNING_RATE):
    """Linear warm-up to `peak`, then a cosine decay to 0 at the last epoch: without the decay
    the EMA digits keep a grey haze."""
    import keras

    warmup = WARMUP_EPOCHS * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(epochs * steps_per_epoch - warmup, 1), warmup_target=peak, warmup_steps=warmup)


def loss_weights(angle, weighting):
    """Per-digit weights of the squared error of v at noise angles `angle` (LOSS_WEIGHTINGS);
    Min-SNR-gamma in v terms is min(SNR, gamma) / (SNR + 1)."""
    import tensorflow as tf

    if weighting == "v":
        return tf.ones_like(angle)
    snr = tf.square(tf.cos(angle) / tf.sin(angle))
    return tf.minimum(snr, MIN_SNR_GAMMA) / (snr + 1.0)


def make_diffusion(config, precision="float32", loss_weighting="v"):
    """The trainer: the network, its EMA copy and the training step. Its weights file is the
    checkpoint, optimizer state included. The network computes in `precision`
    (analyze.network_in_precision); the weights, their average and the loss stay float32.
    The learning-rate schedule is set when training starts, once the epoch's length is known."""
    import keras
    import tensorflow as tf

    class Diffusion(keras.Model):
        def __init__(self):
            super().__init__()
            self.network = analyze.network_in_precision(build_unet(**config), precision)
            self.ema_network = build_unet(**config)
            self.ema_network.set_weights(self.network.get_weights())
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.built = True  # both networks are built; the wrapper has no weights of its own

        @property
        def metrics(self):
            return [self.loss_tracker]

        def train_step(self, data):
            # (digits, labels), or for distillation (teacher's digits, labels, the noise each
            # was drawn from): then the network learns that noise's own path to its digit.
            images, labels, *paired_noise = data
            n = tf.shape(images)[0]
            x0 = analyze.to_signed_unit(images)
            # Bury each digit in noise at a random angle: signal cos(angle), noise sin(angle).
            angle = tf.random.uniform((n,), MIN_ANGLE, MAX_ANGLE)
            noise = paired_noise[0] if paired_noise else tf.random.normal(tf.shape(x0))
            c, s = tf.cos(angle)[:, None, None, None], tf.sin(angle)[:, None, None, None]
            noisy = c * x0 + s * noise
            target_v = c * noise - s * x0
            labels = tf.cast(labels, tf.int32)
            if not paired_noise:  # a student's guidance is learned from its teacher's digits
                # Hide the digit from one example in ten: the unconditional model guidance needs.
                labels = tf.where(tf.random.uniform((n,)) < LABEL_DROPOUT, NULL_LABEL, labels)
            with tf.GradientTape() as tape:
                v = tf.cast(self.network([noisy, angle, labels], training=True), tf.float32)
                per_example = tf.reduce_mean(tf.square(v - target_v), axis=[1, 2, 3])
                loss = tf.reduce_mean(loss_weights(angle, loss_weighting) * per_example)
            grads = tape.gradient(loss, self.network.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.network.trainable_weights))
            analyze.update_moving_average(self.network, self.ema_network, EMA_DECAY, self.optimizer.iterations)
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

    model = Diffusion()
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate_schedule(1, 1), weight_decay=1e-4, clipnorm=1.0))
    model.optimizer.build(model.network.trainable_weights)  # so a checkpoint can restore its state
    return model


def recorded_loss_weighting(record):
    return (record or {}).get("training", {}).get("loss_weighting", "v")


def load_diffusion(run, precision="float32", make_command=MAKE_COMMAND):
    """The trainer with the checkpoint of a run from analyze.start_or_resume (mode 1 or 2)."""
    model = analyze.build_from_record(
        lambda config: make_diffusion(config, precision, recorded_loss_weighting(run.record)),
        run.config, run.sources[0], make_command)
    return analyze.load_weights_or_fail(model, run.sources[0], make_command)


def load_ema_network(run, make_command=MAKE_COMMAND):
    """The EMA network that draws: from its own file when the record vouches for it (its
    sha256), else out of the checkpoint (an EMA file saved just before an interruption, or
    copied in from another run)."""
    checkpoint, average = run.sources
    if not (average.is_file() and (run.record or {}).get("ema_sha256") == analyze.file_sha256(average)):
        if average.is_file() and not checkpoint.is_file():
            raise DataError(f"{analyze.display_path(average)} is not the file its record vouches for (ema_sha256) "
                            f"and there is no checkpoint beside it; remake it with `{make_command}`")
        return load_diffusion(run, make_command=make_command).ema_network
    network = analyze.build_from_record(lambda config: build_unet(**config), run.config, checkpoint, make_command)
    return analyze.load_weights_or_fail(network, average, make_command)


def precision_history(training, precision):
    """The record's "precision": what its epochs computed in, in order, if a resumed run changed it."""
    if not training.get("epochs"):
        return precision
    before = training.get("precision", "float32")
    return before if before.rsplit(", then ", 1)[-1] == precision else f"{before}, then {precision}"


def train(args, model, run, arrays, run_info, peak=PEAK_LEARNING_RATE, sampler_defaults=None):
    """Train on `arrays` (see train_step) for --epochs, checkpointing after every epoch."""
    batches = analyze.training_batches(arrays, args.batch_size, args.seed, DRY_RUN_BATCHES if args.dry_run else None)
    preview_labels = analyze.requested_labels(None, 2)
    (weights, average), record = run.targets, run.record

    def checkpoint(epoch):
        analyze.save_weights_atomic(model.ema_network, average)
        analyze.save_weights_atomic(model, weights)
        record["ema_sha256"] = analyze.file_sha256(average)  # the record is written last: see load_ema_network
        analyze.write_json_atomic(record, analyze.record_path(weights))
        preview = Sampler(model.ema_network, defaults=sampler_defaults)(preview_labels, seed=SEED)
        analyze.save_image_grid(preview, Path(args.figures_dir) / "diffusion_progress.png",
                                columns=10, title=f"EMA samples after epoch {epoch}")

    epochs = record["training"].get("epochs", 0) + 1 if args.dry_run else args.epochs
    # Same command, same schedule: the optimizer's step count (in the checkpoint) says where on
    # it a resumed run stands. A larger --epochs stretches the cosine.
    model.optimizer.learning_rate = learning_rate_schedule(len(batches), epochs, peak)
    record["training"]["learning_rate"] = {"peak": peak, "warmup_epochs": WARMUP_EPOCHS,
                                           "decay": "cosine to 0", "over_epochs": epochs}
    analyze.fit_resumably(model, batches, record, epochs, args.stop_after,
                          {**run_info, "batch_size": args.batch_size, "seed": args.seed,
                           "precision": precision_history(record["training"], run_info["precision"])},
                          checkpoint)


# == Sampling ==============================================================================

def sampling_angles(steps):
    """The steps+1 noise angles the sampler walks, evenly spaced from pure noise down to 0
    (the clean digit), none of the noisy ones below the least noise trained on."""
    return np.append(np.maximum(np.linspace(MAX_ANGLE, 0.0, steps + 1)[:-1], MIN_ANGLE), 0.0)


def in_interval(angles, interval):
    """Per angle: whether its noise-to-signal ratio tan(angle) lies in interval (low, high]."""
    low, high = interval
    return [bool(low < np.tan(angle) <= high) for angle in angles]


def solver_coefficients(angles):
    """Per step i (angles[i] -> angles[i+1]) of DPM-Solver++(2M) (Lu et al. 2022): the update
    x' = a x + b (c1 x0 + c2 x0_prev), where x0 is this step's estimate of the clean digit and
    x0_prev the previous step's. It extrapolates the estimate linearly in log signal-to-noise
    ratio from the last two steps, so fewer steps reach the same digits. The first step, and
    the last (to zero noise, where the log ratio is infinite), are DDIM's (c2 = 0); c1 + c2 = 1,
    so an exact estimate stays exact."""
    angles = np.maximum(np.asarray(angles, np.float64), 0.0)
    log_snr = np.log(np.cos(angles[:-1]) / np.sin(angles[:-1]))  # finite: angles[:-1] >= MIN_ANGLE
    rows = []
    for i in range(len(angles) - 1):
        c, s = np.cos(angles[i]), np.sin(angles[i])
        c_next, s_next = np.cos(angles[i + 1]), np.sin(angles[i + 1])
        a = s_next / s  # DDIM: keep the noise the estimate implies, at the next level
        b = c_next - a * c
        c2 = 0.0
        if 0 < i and s_next > 0:
            h = np.log(c_next / s_next) - log_snr[i]
            r = (log_snr[i] - log_snr[i - 1]) / h  # the last step's length over this one's
            c2 = -1 / (2 * r)
        rows.append((a, b, 1 - c2, c2))
    return np.array(rows, np.float32)


class Sampler:
    """DPM-Solver++(2M) with classifier-free guidance and, given a weak network, autoguidance.

    Each step passes the batch through the network (with the unconditional copies beside it
    inside the guidance interval) and through the weak network inside the autoguidance
    interval, each network one compiled graph, then takes the solver's update. A distilled
    network (defaults=DISTILLED_DEFAULTS) has its guidance built in and makes one pass a step."""

    def __init__(self, network, weak_network=None, defaults=None):
        self.network, self.weak_network = network, weak_network
        # Without a weak network (a run of your own, training's previews): guidance alone.
        self.defaults = defaults or {**SAMPLER_DEFAULTS, **({} if weak_network is not None else {"autoguidance": 1.0})}
        self.distilled = defaults is DISTILLED_DEFAULTS
        self._network_pass = compiled_pass(network)
        self._weak_pass = None if weak_network is None else compiled_pass(weak_network)

    def _step(self, x, x0_prev, labels, angle, coefficients, guidance, autoguidance, guided, autoguided):
        """One denoising step: the guided v, the clean digit it implies, the solver's update."""
        import tensorflow as tf

        n = tf.shape(x)[0]
        # The steps add up in float32, whatever the network computes in (analyze.network_in_precision).
        if guided:  # the conditional and unconditional copies in one batch
            both = tf.cast(self._network_pass([tf.concat([x, x], 0), tf.fill((2 * n,), angle),
                                               tf.concat([labels, tf.fill((n,), NULL_LABEL)], 0)]), tf.float32)
            v_cond, v_uncond = both[:n], both[n:]
            v = v_uncond + guidance * (v_cond - v_uncond)
        else:
            v_cond = v = tf.cast(self._network_pass([x, tf.fill((n,), angle), labels]), tf.float32)
        if autoguided:  # v_cond + (w - 1)(v_cond - v_weak), on top of any classifier-free guidance
            v_weak = tf.cast(self._weak_pass([x, tf.fill((n,), angle), labels]), tf.float32)
            v = v + (autoguidance - 1.0) * (v_cond - v_weak)
        x0 = tf.clip_by_value(tf.cos(angle) * x - tf.sin(angle) * v, -1.0, 1.0)  # data lives in [-1, 1]
        a, b, c1, c2 = tf.unstack(coefficients)
        return a * x + b * (c1 * x0 + c2 * x0_prev), x0

    def __call__(self, labels, seed=SEED, **settings):
        """uint8 digits (N x 28 x 28, 0 = background) of the requested labels."""
        return self.with_steps(labels, seed, keep_steps=False, **settings)[0]

    def schedule(self, steps=None, guidance=None, guidance_interval=GUIDANCE_INTERVAL, autoguidance=None,
                 autoguidance_interval=AUTOGUIDANCE_INTERVAL):
        """(steps, guidance, autoguidance, per step: guided?, autoguided?), settings left None
        taking self.defaults'."""
        if self.distilled and {guidance, autoguidance} - {None, 1}:
            raise DataError("the distilled sampler's guidance is in its weights; --guidance and --autoguidance "
                            "need the full sampler (--teacher)")
        steps, guidance, autoguidance = (self.defaults[key] if value is None else value for key, value in
                                         (("steps", steps), ("guidance", guidance), ("autoguidance", autoguidance)))
        noisy_angles = sampling_angles(steps)[:-1]
        guided = [guidance != 1 and inside for inside in in_interval(noisy_angles, guidance_interval)]
        autoguided = [autoguidance != 1 and inside for inside in in_interval(noisy_angles, autoguidance_interval)]
        if any(autoguided) and self.weak_network is None:
            raise DataError("autoguidance needs a weak network (load_weak_network), or --autoguidance 1")
        return steps, guidance, autoguidance, guided, autoguided

    def passes_per_digit(self, **settings):
        """Network passes each digit costs: one a step, one more where each guidance acts."""
        steps, _, _, guided, autoguided = self.schedule(**settings)
        return steps + sum(guided) + sum(autoguided)

    def with_steps(self, labels, seed=SEED, steps=None, guidance=None, guidance_interval=GUIDANCE_INTERVAL,
                   autoguidance=None, autoguidance_interval=AUTOGUIDANCE_INTERVAL, paper_level=PAPER_LEVEL,
                   batch_size=SAMPLING_BATCH, progress=False, keep_steps=True, noise=None):
        """(digits, steps): the digits, and uint8 steps x N x 28 x 28 pictures of the clean digit
        as the network estimated it at each step (empty unless keep_steps). Settings left None
        take self.defaults'; outside their intervals a step makes the plain conditional pass
        alone. `noise` (N x 28 x 28 x 1) is where the digits start instead of noise from `seed`."""
        import keras
        import tensorflow as tf

        steps, guidance, autoguidance, guided, autoguided = self.schedule(
            steps, guidance, guidance_interval, autoguidance, autoguidance_interval)
        angles = sampling_angles(steps)
        coefficients = solver_coefficients(angles)

        def pixels(x0):
            digits = analyze.from_signed_unit(x0)
            digits[digits <= paper_level] = 0
            return digits

        rng = np.random.default_rng(seed)
        digits, estimates = [], []
        bar = (keras.utils.Progbar(len(labels) * steps, unit_name="digit-step",
                                   verbose=analyze.progress_verbosity()) if progress else None)
        for start in range(0, len(labels), batch_size):
            batch_labels = tf.constant(labels[start:start + batch_size], tf.int32)
            n = len(batch_labels)
            x = tf.constant(rng.standard_normal((n, 28, 28, 1), dtype=np.float32) if noise is None
                            else noise[start:start + n])  # pure noise
            x0 = tf.zeros_like(x)
            batch_estimates = []
            for i in range(steps):
                x, x0 = self._step(x, x0, batch_labels, tf.constant(angles[i], tf.float32),
                                   tf.constant(coefficients[i]), tf.constant(guidance, tf.float32),
                                   tf.constant(autoguidance, tf.float32), guided[i], autoguided[i])
                if keep_steps:
                    batch_estimates.append(pixels(x0))
                if bar:
                    bar.add(n)
            digits.append(pixels(x0))  # the last step's estimate is the clean digit
            estimates.append(np.stack(batch_estimates, 0) if keep_steps else np.zeros((0, n, 28, 28), np.uint8))
        return np.concatenate(digits), np.concatenate(estimates, axis=1)


def compiled_pass(network):
    """network(inputs) as one compiled graph for any batch size (n digits, or 2n with the
    unconditional copies); the step's few element-wise operations run eagerly, which starts
    sooner than a graph of the whole step per guidance variant."""
    import tensorflow as tf

    signature = [[tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype) for tensor in network.inputs]]
    # No autograph: the pass has no Python control flow, and autograph re-reads this file's
    # source when it traces, which breaks a long run whose file is edited under it.
    return tf.function(lambda inputs: network(inputs, training=False), input_signature=signature,
                       autograph=False)


def has_weak_network(weights_dir):
    """Whether <weights_dir>/autoguide holds a weak network to draw with."""
    return (Path(weights_dir) / WEAK_DIR / WEIGHT_FILES[1]).is_file()


def uses_weak_network(weights_dir, autoguidance=None):
    """Whether drawing at `autoguidance` (None: the defaults) takes the weak network: 1 never
    does, any other scale needs it, and the defaults use it where there is one."""
    if autoguidance is None:
        return AUTOGUIDANCE != 1 and has_weak_network(weights_dir)
    return autoguidance != 1


def load_weak_network(weights_dir):
    """The EMA network in <weights_dir>/autoguide, made by this script like any other run; a
    missing or broken one is one line naming the command that makes it."""
    folder = Path(weights_dir) / WEAK_DIR
    make_command = f"{MAKE_COMMAND} {WEAK_RECIPE} --weights-dir {analyze.display_path(folder)}"
    if not has_weak_network(weights_dir):  # said before TensorFlow loads
        raise DataError(f"autoguidance needs a weak network and {analyze.display_path(folder)} has none; make it "
                        f"with `{make_command}`, or draw without it (--autoguidance 1)")
    run = analyze.start_or_resume(2, folder, WEIGHT_FILES, MODEL_CONFIG, BUILDER, make_command)
    return load_ema_network(run, make_command)


def distill_command(weights_dir):
    default = Path(weights_dir).resolve() == analyze.WEIGHTS_DIR.resolve()
    return DISTILL_COMMAND + ("" if default else f" --weights-dir {analyze.display_path(weights_dir)}")


def has_distilled(weights_dir):
    """Whether <weights_dir>/distilled holds a distilled sampler to draw with (a dry run's
    plumbing check is not one)."""
    folder = Path(weights_dir) / DISTILLED_DIR
    return (folder / WEIGHT_FILES[1]).is_file() and not analyze.made_by_dry_run(folder / WEIGHT_FILES[0])


def check_teacher(student, teacher, weights_dir, remedy):
    """Refuse a student run (analyze.start_or_resume) distilled from another network than the
    teacher run's: the sha256 of its EMA weights is in both records."""
    taught_by = (student.record or {}).get("distilled_from", {}).get("teacher_ema_sha256")
    if taught_by != (teacher.record or {}).get("ema_sha256"):
        raise DataError(f"{analyze.display_path(Path(weights_dir) / DISTILLED_DIR)} was distilled from another "
                        f"network than the one in {analyze.display_path(weights_dir)}; {remedy}")


def drawing_sampler(network, weak_network=None, precision="auto", defaults=None):
    cast = functools.partial(analyze.network_in_precision, precision=precision)
    return Sampler(cast(network), None if weak_network is None else cast(weak_network), defaults)


def load_sampler(weights_dir=analyze.WEIGHTS_DIR, precision="auto", autoguidance=None, teacher=False):
    """The generator contract (analyze.GENERATOR_SCRIPTS): the distilled sampler in
    <weights_dir>/distilled if there is one, unless `teacher` or an `autoguidance` scale asks
    for the full one: a Sampler on the EMA weights, and on the weak network beside them if
    drawing at `autoguidance` takes it."""
    run = analyze.start_or_resume(2, weights_dir, WEIGHT_FILES, MODEL_CONFIG, BUILDER, MAKE_COMMAND)
    if has_distilled(weights_dir) and not teacher and autoguidance is None:
        folder, make_command = Path(weights_dir) / DISTILLED_DIR, distill_command(weights_dir)
        student = analyze.start_or_resume(2, folder, WEIGHT_FILES, MODEL_CONFIG, BUILDER, make_command)
        check_teacher(student, run, weights_dir, f"remake it with `{make_command}`, or draw with the full sampler "
                      "(--teacher)")
        sampler = drawing_sampler(load_ema_network(student, make_command), None, precision, DISTILLED_DEFAULTS)
        sampler.weights = student.sources[0]  # its record, not the teacher's, is where its figures go
        return sampler
    weak_network = load_weak_network(weights_dir) if uses_weak_network(weights_dir, autoguidance) else None
    return drawing_sampler(load_ema_network(run), weak_network, precision)


# == Distillation ==========================================================================

def pair_noise(seed, chunk, size):
    """The noise the teacher starts chunk number `chunk` of its pairs from: drawn again from
    the seed when the student trains, so only the digits are stored."""
    return np.random.default_rng([seed, chunk]).standard_normal((size, 28, 28, 1), dtype=np.float32)


def teacher_pairs(teacher, path, count, seed, chunk, about):
    """(`count` (digit, label, noise) triples: the teacher's digits, each drawn from its noise;
    the seconds they took). They are kept in `path` (with `about`, what drew them) after every
    chunk, so an interrupted run keeps what it drew."""
    import keras

    images, labels, seconds = np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int32), 0.0
    if path.is_file():
        with np.load(path) as saved:
            if json.loads(str(saved["about"])) != about:
                raise DataError(f"{analyze.display_path(path)} was drawn by another teacher or sampler than "
                                "this run's; move it away to draw new pairs")
            images, labels = saved["images"], saved["labels"]
            seconds = float(saved["seconds"]) if "seconds" in saved else 0.0
    chunks = math.ceil(count / chunk)
    if len(images) < chunks * chunk:
        print(f"the teacher draws {chunks * chunk:,} digits to learn from ({len(images):,} drawn already), "
              f"{teacher.passes_per_digit(steps=about['steps'])} network passes each; after Ctrl-C the same "
              "command draws on")
        bar = keras.utils.Progbar(chunks * chunk, unit_name="digit", verbose=analyze.progress_verbosity())
        bar.update(len(images))
    for k in range(len(images) // chunk, chunks):
        start = time.perf_counter()
        chunk_labels = analyze.requested_labels(None, chunk // analyze.NUM_CLASSES)
        digits = teacher(chunk_labels, noise=pair_noise(seed, k, chunk), steps=about["steps"])
        images, labels = np.concatenate([images, digits]), np.concatenate([labels, chunk_labels])
        seconds += time.perf_counter() - start
        with analyze.atomic_path(path) as tmp:
            np.savez(tmp, images=images, labels=labels, about=json.dumps(about), seconds=seconds)
        bar.add(chunk)
    noise = np.concatenate([pair_noise(seed, k, chunk) for k in range(chunks)])
    return (images[:count], labels[:count], noise[:count]), seconds


def distill(args, mode, precision, session):
    """Modes 0 and 1 with --distill: train the student in <weights-dir>/distilled to draw in
    DISTILLED_STEPS plain steps what the teacher's full sampler draws; returns the student."""
    teacher_run = analyze.start_or_resume(2, args.weights_dir, WEIGHT_FILES, MODEL_CONFIG, BUILDER, MAKE_COMMAND)
    teacher_network = load_ema_network(teacher_run)
    weak_network = load_weak_network(args.weights_dir) if uses_weak_network(args.weights_dir) else None
    teacher = drawing_sampler(teacher_network, weak_network, args.precision)
    make_command = distill_command(args.weights_dir)
    folder = Path(args.weights_dir) / DISTILLED_DIR
    run = analyze.start_or_resume(mode, folder, WEIGHT_FILES, teacher_run.config, BUILDER, make_command, args.dry_run)
    about = json.loads(json.dumps({"teacher_ema_sha256": (teacher_run.record or {}).get("ema_sha256"),
                                   "seed": args.seed, **teacher.defaults, **({"steps": 2} if args.dry_run else {})}))
    if run.sources:
        check_teacher(run, teacher_run, args.weights_dir, f"start again with `{make_command}`")
    # A dry run draws one small chunk, of whole rows of ten digits.
    chunk = (analyze.NUM_CLASSES * math.ceil(args.batch_size * DRY_RUN_BATCHES / analyze.NUM_CLASSES)
             if args.dry_run else SAMPLING_BATCH)
    count = chunk if args.dry_run else DISTILL_PAIRS
    pairs, seconds = teacher_pairs(teacher, run.targets[0].parent / PAIRS_FILE, count, args.seed, chunk, about)
    # From here on an interrupted run has epochs to continue from (before, the pairs drawn).
    session.run, session.resume = run, make_command.replace("--mode 0", "--mode 1").removeprefix("python ")
    if run.sources:
        model = load_diffusion(run, precision, make_command)
    else:
        model = make_diffusion(run.config, precision)
        model.network.set_weights(teacher_network.get_weights())
        model.ema_network.set_weights(teacher_network.get_weights())
    run.record["distilled_from"] = {
        "method": "trained on the teacher's own (noise, digit) pairs, so that few plain steps follow them "
                  "(reflow, Liu et al. 2023)", "rounds": 1,
        "teacher": analyze.display_path(teacher_run.sources[1]), "pairs": count, **about,
        "passes_per_digit": teacher.passes_per_digit(steps=about["steps"]), "pairs_wall_time_s": round(seconds, 1)}
    print(f"distilling into {analyze.display_path(run.targets[0].parent)} on {count:,} teacher digits "
          f"(the network in {precision})")
    train(args, model, run, pairs, {"pairs": analyze.display_path(run.targets[0].parent / PAIRS_FILE),
                                    "precision": precision}, DISTILL_LEARNING_RATE, DISTILLED_DEFAULTS)
    return model.ema_network


# == Command line ==========================================================================

def ask_mode():
    """The interactive prompt; asks again after a bad answer, exits 2 at the end of input."""
    print("What should train_diffusion.py do?")
    for key, meaning in MODES.items():
        print(f"  {key} = {meaning}")
    while True:
        try:
            answer = input("mode [0/1/2]: ").strip()
        except EOFError:
            print("\nerror: no answer at the mode prompt (end of input); pass --mode 0, 1 or 2", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("\nerror: interrupted at the mode prompt; nothing was done", file=sys.stderr)
            sys.exit(130)
        if answer in MODES:
            return int(answer)
        print(f"  {answer!r} is not a mode: type 0, 1 or 2 and press Enter")


SAMPLER_FLAGS = ("steps", "guidance", "autoguidance", "paper_level")


def add_sampler_arguments(parser):
    """The Sampler's settings as flags (dests SAMPLER_FLAGS, and --teacher); benchmarks/cas.py
    takes them too."""
    parser.add_argument("--teacher", action="store_true",
                        help=f"draw with the full sampler ({STEPS} steps with guidance) even where "
                             f"<weights-dir>/{DISTILLED_DIR} holds a distilled one")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"sampling steps (default: {STEPS}, or {DISTILLED_STEPS} for a distilled sampler)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance scale of the full sampler (1 = plain conditional, "
                             f"0 = unconditional; default: {GUIDANCE:g}); implies --teacher")
    parser.add_argument("--autoguidance", type=float, default=None,
                        help=f"autoguidance scale: steer away from the weak network in <weights-dir>/{WEAK_DIR} "
                             f"(1 = off; default: {AUTOGUIDANCE:g} if there is one, else off); implies --teacher")
    parser.add_argument("--paper-level", type=int, default=PAPER_LEVEL,
                        help="pixels at or below this grey level (0-255) are drawn as blank paper (0 = as estimated)")


def check_sampler_arguments(parser, args):
    """A one-line usage error (exit 2) for settings the Sampler cannot draw with."""
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    # Guidance is the full sampler's: asking for it asks for that sampler.
    args.teacher = args.teacher or args.guidance is not None or args.autoguidance is not None
    for flag in ("guidance", "autoguidance"):
        if (getattr(args, flag) or 0) < 0:
            parser.error(f"--{flag} must be 0 or more")
    if not 0 <= args.paper_level <= 255:
        parser.error(f"--paper-level must be 0-255, got {args.paper_level}")


def sampler_settings(args):
    return {flag: getattr(args, flag) for flag in SAMPLER_FLAGS}


def parse_args(argv=None):
    parser = analyze.generator_parser(
        "Train the class-conditional diffusion model and/or draw digits with it.", no_mode="ask at a prompt",
        num_per_digit=NUM_PER_DIGIT, epochs=EPOCHS, batch_size=BATCH_SIZE, seed=SEED,
        figures="ddim_generated_<d>.png and diffusion_progress.png",
        dry_run=f"train {DRY_RUN_BATCHES} batches for one epoch and draw with 2 steps; it never writes "
                "into weights/ nor over weights a real run made")
    parser.add_argument("--distill", action="store_true",
                        help=f"with --mode 0 or 1: train the distilled sampler in <weights-dir>/{DISTILLED_DIR}, "
                             f"from the network in <weights-dir> (--epochs defaults to {DISTILL_EPOCHS} then)")
    parser.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS, default=None,
                        help="a new run's loss: v (the plain error of v) or min-snr (Min-SNR-gamma, the weak "
                             "network's recipe) (default: v; a continued run keeps its record's)")
    add_sampler_arguments(parser)
    argv = sys.argv[1:] if argv is None else argv
    if "--distill" in argv:
        parser.set_defaults(epochs=DISTILL_EPOCHS)
    args = analyze.parse_generator_args(parser, argv)
    if args.distill and (args.teacher or args.guidance is not None or args.autoguidance is not None):
        parser.error("--distill learns the full sampler at its defaults: drop --teacher, --guidance and --autoguidance")
    check_sampler_arguments(parser, args)
    return args


def train_network(args, mode, session, weak_network):
    """Modes 0 and 1: train the network in --weights-dir on --csv; returns its sampler."""
    run = session.run = analyze.start_or_resume(mode, args.weights_dir, WEIGHT_FILES, MODEL_CONFIG, BUILDER,
                                                MAKE_COMMAND, args.dry_run)
    loss_weighting = recorded_loss_weighting(run.record) if run.sources else args.loss_weighting or "v"
    if args.loss_weighting not in (None, loss_weighting):
        raise DataError(f"the run in {analyze.display_path(args.weights_dir)} trained with --loss-weighting "
                        f"{loss_weighting}; --loss-weighting chooses for new runs (--mode 0)")
    precision = analyze.resolve_precision("float32" if args.precision == "auto" else args.precision)
    model = load_diffusion(run, precision) if run.sources else make_diffusion(run.config, precision, loss_weighting)
    images, labels = analyze.load_digits_csv(args.csv)
    print(f"training on {len(images):,} digits from {analyze.display_path(args.csv)} (the network in {precision})")
    train(args, model, run, (images, labels), {"csv": analyze.display_path(args.csv), "precision": precision,
                                               "loss_weighting": loss_weighting})
    return drawing_sampler(model.ema_network, weak_network, args.precision)


def main(argv=None):
    args = parse_args(argv)
    mode = args.mode if args.mode is not None else ask_mode()
    with analyze.generator_errors() as session:
        if args.distill and mode == 2:
            raise DataError("--distill trains (--mode 0 or 1); --mode 2 draws with the distilled sampler wherever "
                            "there is one")
        distilled = args.distill or (mode == 2 and not args.teacher and has_distilled(args.weights_dir))
        if not distilled and args.autoguidance is None and not has_weak_network(args.weights_dir):
            print(f"no weak network in {analyze.display_path(args.weights_dir / WEAK_DIR)}: drawing with "
                  "classifier-free guidance alone")
        # A weak network that is asked for and missing is said before any training.
        weak_network = (load_weak_network(args.weights_dir) if mode != 2 and not distilled
                        and uses_weak_network(args.weights_dir, args.autoguidance) else None)
        analyze.set_seed(args.seed)
        if args.distill:
            precision = analyze.resolve_precision("float32" if args.precision == "auto" else args.precision)
            sampler = drawing_sampler(distill(args, mode, precision, session), None, args.precision,
                                      DISTILLED_DEFAULTS)
        elif mode == 2:
            if distilled:
                print(f"drawing with the distilled sampler in {analyze.display_path(args.weights_dir / DISTILLED_DIR)}"
                      " (--teacher: the full one)")
            sampler = load_sampler(args.weights_dir, args.precision, args.autoguidance, args.teacher)
        else:
            sampler = train_network(args, mode, session, weak_network)

        settings = {**sampler_settings(args), **({"steps": 2} if args.dry_run else {})}
        print(f"{sampler.passes_per_digit(**{k: settings[k] for k in ('steps', 'guidance', 'autoguidance')})} "
              "network passes per digit")
        analyze.draw_and_save(lambda labels: sampler(labels, args.seed, progress=True, **settings),
                              args, "ddim_generated")


if __name__ == "__main__":
    main()
