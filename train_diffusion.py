"""Train a class-conditional diffusion model on dataset/Train.csv and draw digits with it.

    python train_diffusion.py            # asks: 0 = train from scratch, 1 = continue, 2 = generate
    python train_diffusion.py --mode 2 --digit 7 --num-per-digit 64 --output sevens.npz
    python train_diffusion.py --mode 1                # continue an interrupted run (60 epochs by default)

The network is a small U-Net told the noise level and the digit. It predicts "v" (a mix of
noise and image that stays well scaled at every noise level) on a cosine schedule over data
in [-1, 1]. Labels are dropped 10% of the time during training so the same network also
learns unconditional digits, which classifier-free guidance uses at sampling time. Samples
come from an exponential moving average (EMA) of the weights, with a deterministic sampler
(DPM-Solver++(2M) by default, or DDIM) whose network passes run compiled on the whole batch,
guided also away from a weaker network of its kind in weights/autoguide (autoguidance). It
draws in bfloat16 where the CPU computes it natively, and trains in it when asked
(--precision bfloat16; the weights stay float32).

Generation writes generated_digits/ddim_generated_<d>.png for every digit, and with
--output an .npz of uint8 images (0 = background, like MNIST) and their labels.
weights/diffusion_model.weights.h5 holds network, EMA and optimizer state, and
diffusion_ema.weights.h5 the EMA network alone, which is all generation needs (a quarter of
the bytes and no optimizer to build). Both are written atomically after every
epoch, so Ctrl-C loses at most the epoch in progress. It takes the
generator flags train_gan.py takes (plus its sampler's and network options) and keeps the
generator contract in analyze.GENERATOR_SCRIPTS.

TensorFlow and Keras are imported inside the functions that need them, so that --help and
argument errors answer at once.
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

import analyze
from analyze import DataError

# -- model (the generator contract: analyze.GENERATOR_SCRIPTS) -----------------------------
MODEL_NAME = "diffusion"
WEIGHT_FILES = ("diffusion_model.weights.h5", "diffusion_ema.weights.h5")  # checkpoint, sampled network
MAKE_COMMAND = "python train_diffusion.py --mode 0"
BUILDER = "train_diffusion.build_unet"
CONDITIONINGS = ("shift", "scale_shift")  # how noise level and digit enter the blocks (build_unet)
# Scale-shift beat shift at 15 and at 60 epochs (benchmarks/README, "A stronger network"): the shipped
# weights are this network; older records without these keys rebuild through LEGACY_CONFIG.
MODEL_CONFIG = {"widths": [64, 128], "embedding_dim": 128, "patch": 2, "conditioning": "scale_shift",
                "self_condition": False, "attention": False, "blocks": 1, "ink": False}
# Records from before these keys:
LEGACY_CONFIG = {"conditioning": "shift", "self_condition": False, "attention": False, "blocks": 1, "ink": False}
NULL_LABEL = 10  # the "no digit" label classifier-free guidance needs
# build_unet arguments a new run (--mode 0) may choose by flag; a continued run keeps its record's.
NETWORK_FLAGS = ("widths", "attention", "blocks", "ink")
# An ink-conditioned network (--ink) is told how much of the page each digit inks; the sampler
# draws that amount from the training digits' own, per class, kept in the record as quantiles.
INK_QUANTILES = 101  # 0%, 1%, ..., 100%

# -- training -----------------------------------------------------------------------------
EPOCHS = 60  # the shipped weights' schedule, ~4.2 h on a 2-core Xeon; shorter runs: README, train_diffusion.py
BATCH_SIZE = 128
PEAK_LEARNING_RATE = 1e-3  # reached after WARMUP_EPOCHS, then decayed on a cosine to 0 at --epochs
WARMUP_EPOCHS = 1
LABEL_DROPOUT = 0.1
SELF_CONDITION_RATE = 0.5  # batches shown the network's own estimate (self-conditioned networks)
EMA_DECAY = 0.999
# How each noise level's error counts in the loss. "v": the plain mean squared error of the
# v-prediction. "min-snr": Min-SNR-gamma (Hang et al. 2023), which caps the weight of the
# low-noise levels, where the clean digit is almost given: in v terms min(SNR, gamma) / (SNR + 1).
LOSS_WEIGHTINGS = ("v", "min-snr")
LOSS_WEIGHTING = "v"
MIN_SNR_GAMMA = 5.0
SEED = 42
DRY_RUN_BATCHES = 2

# -- sampling -----------------------------------------------------------------------------
STEPS = 10
SPACINGS = ("angle", "logsnr")  # where the steps fall on the noise scale (sampling_angles)
SPACING = "angle"
SOLVERS = ("ddim", "dpm++2m")
SOLVER = "dpm++2m"
# Chosen with benchmarks/diffusion_settings.py (README): guiding only where the digit's class
# is decided (the 4th and 5th of 10 steps), but firmly, keeps more of the variety that
# guidance costs than gentler guidance over more steps, with 12 network passes per digit.
# 2.25 for the scale-shift network: over 15,000 digits (3 seeds) 99.59% as requested and 95.2-95.5%
# of real digits' variety; 2 draws the wrong digit too often (99.44%), 2.5 costs variety (94.6-94.8%).
GUIDANCE = 2.25
GUIDANCE_INTERVAL = (1.2, 2.5)  # guide at noise-to-signal ratios tan(angle) in (low, high]
ETA = 0.0
ETA_INTERVAL = None  # fresh noise (eta) at every step, or only at tan(angle) in (low, high]
# Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"):
# steer the network away from a weaker network of its own kind (smaller, trained for less time)
# rather than, or as well as, from its own unconditional self. Both passes are told the digit,
# so it corrects what a weak model gets wrong without pulling every digit toward its class's
# most typical shape, which is what costs classifier-free guidance its variety.
# 3 on steps 3-7 of 10, beside guidance 2.25 on steps 4-5 (17 passes a digit): CAS 98.91%
# against guidance alone's 98.65% (real digits 99.27%; seed 1: 98.89% against 99.31%), 99.63% of 6,000 digits as requested over
# 3 seeds, variety 98% of real digits' against 95% (benchmarks/README.md, "Autoguidance").
AUTOGUIDANCE = 3.0  # 1 = off
AUTOGUIDANCE_INTERVAL = (0.6, 5.0)  # tan(angle) in (low, high], as GUIDANCE_INTERVAL
WEAK_DIR = "autoguide"  # the weak network's run folder, inside the weights folder of the network it guides
# How the shipped weak network was made: the shipped network's size, the first 7 epochs of a
# 15-epoch Min-SNR schedule (a smaller network trained for 4 epochs guided worse: same section).
WEAK_RECIPE = "--epochs 15 --stop-after 7 --loss-weighting min-snr"
PAPER_LEVEL = 6  # pictures' pixels at or below this grey level (of 255) are set to 0, the paper;
# the haze reaches level 6: 1.2% of the 60-epoch model's pixels are 4-6, MNIST's 0.25% (README)
# What the metrics in the weights record were drawn with (analyze.py --save-metrics, cas.py --save).
SAMPLER_DEFAULTS = {"steps": STEPS, "solver": SOLVER, "spacing": SPACING, "guidance": GUIDANCE,
                    "guidance_interval": GUIDANCE_INTERVAL, "autoguidance": AUTOGUIDANCE,
                    "autoguidance_interval": AUTOGUIDANCE_INTERVAL, "paper_level": PAPER_LEVEL, "eta": ETA,
                    "eta_interval": ETA_INTERVAL}
# A weights folder with no weak network in it (a run of your own before you make one; training's
# progress pictures) draws with classifier-free guidance alone, at the scale chosen for it alone.
WITHOUT_WEAK_NETWORK = {"guidance": 2.25, "autoguidance": 1.0}
NUM_PER_DIGIT = 16
SAMPLING_BATCH = 500
MIN_ANGLE, MAX_ANGLE = 0.02, math.pi / 2  # signal = cos(angle), noise = sin(angle)

MODES = {"0": "train from scratch", "1": "continue training", "2": "generate only"}


# =========================================================================================
# Model
# =========================================================================================

def build_unet(widths=(64, 128), embedding_dim=128, patch=2, conditioning="scale_shift", self_condition=False,
               attention=False, blocks=1, ink=False):
    """U-Net: (noisy digit, noise angle, label 0-10[, ink][, estimate]) -> predicted v, 28x28x1.

    It works on 2x2 patches (28x28x1 folded into 14x14x4, unfolded at the end): on a CPU the
    full-resolution convolutions would cost most of the time, and digits lose nothing by it.
    The noise level and digit reach every residual block as a per-channel shift of its
    features ("shift"), or as a scale and a shift of its normalized features ("scale_shift",
    ADM's adaptive group norm, Dhariwal & Nichol 2021), which lets the digit switch features
    on and off rather than only nudge them.

    With self_condition (Chen et al. 2022, "Analog Bits") the network also sees its own
    previous estimate of the clean digit (zeros when there is none): the sampler has that
    estimate anyway, so later steps refine it instead of starting over, at no extra pass.

    With attention, the middle block at the coarsest resolution is followed by self-attention
    over its positions (7x7 = 49 of them at the default sizes): every part of the digit sees
    every other, which convolutions that small reach only across several blocks, for a few
    percent more time a pass (benchmarks/unet_pass.py).

    blocks is the number of residual blocks at each resolution on the way down and on the way
    up (ADM uses 2-3): capacity where the digit's strokes are drawn, paid for in every pass.

    With ink the network is also told the share of the page the digit inks (ink_share), embedded
    like the noise level. Without it the shipped network draws a narrower range of stroke weights
    than MNIST's, guided or not (bold digits too rare: benchmarks/ink_range.py); told an ink drawn
    from the real digits' range (Sampler), it is asked for bold and thin digits as often as they
    occur.

    The defaults build the shipped network (scale-shift, as MODEL_CONFIG, which new runs build).
    """
    import keras
    from keras import layers, ops

    if conditioning not in CONDITIONINGS:
        raise DataError(f"unknown conditioning {conditioning!r}; choose one of {', '.join(CONDITIONINGS)}")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise DataError(f"blocks must be a whole number of at least 1, got {blocks!r}")

    def timestep_embedding(angle):
        # Sinusoidal features of the angle at geometrically spaced frequencies.
        freqs = ops.exp(ops.linspace(0.0, math.log(1000.0), embedding_dim // 2))
        scaled = angle[:, None] * freqs[None, :]
        return ops.concatenate([ops.sin(scaled), ops.cos(scaled)], axis=-1)

    def ink_embedding(share):
        # The same features, with the share (0-0.5 for digits) spread over the angles' range.
        return timestep_embedding(math.pi * share)

    def res_block(x, emb, width):
        skip = x if x.shape[-1] == width else layers.Conv2D(width, 1)(x)
        h = layers.Activation("swish")(layers.GroupNormalization(8)(x))
        h = layers.Conv2D(width, 3, padding="same")(h)
        if conditioning == "shift":
            h = h + layers.Reshape((1, 1, width))(layers.Dense(width)(emb))
            h = layers.GroupNormalization(8)(h)
        else:
            modulation = layers.Reshape((1, 1, 2 * width))(layers.Dense(2 * width)(emb))
            h = layers.GroupNormalization(8)(h) * (1 + modulation[..., :width]) + modulation[..., width:]
        h = layers.Activation("swish")(h)
        h = layers.Conv2D(width, 3, padding="same")(h)
        return h + skip

    def attention_block(x):
        height, width, channels = x.shape[1:]
        tokens = layers.Reshape((height * width, channels))(layers.GroupNormalization(8)(x))
        # One head: in a scratch timing 4 heads made a pass about three times as much slower.
        attended = layers.MultiHeadAttention(num_heads=1, key_dim=channels)(tokens, tokens)
        return x + layers.Reshape((height, width, channels))(attended)

    noisy = keras.Input((28, 28, 1), name="noisy")
    angle = keras.Input((), name="angle")
    label = keras.Input((), dtype="int32", name="label")
    emb = layers.Lambda(timestep_embedding, name="angle_features")(angle)
    emb = layers.Dense(embedding_dim, activation="swish")(emb)
    emb = emb + layers.Flatten()(layers.Embedding(NULL_LABEL + 1, embedding_dim)(label))
    inputs = [noisy, angle, label]
    if ink:
        inputs.append(keras.Input((), name="ink"))
        emb = emb + layers.Dense(embedding_dim, activation="swish")(
            layers.Lambda(ink_embedding, name="ink_features")(inputs[-1]))
    emb = layers.Dense(embedding_dim, activation="swish")(emb)

    x = noisy
    if self_condition:
        inputs.append(keras.Input((28, 28, 1), name="estimate"))
        x = layers.Concatenate()([noisy, inputs[-1]])
    channels = x.shape[-1]
    x = layers.Lambda(lambda t: ops.reshape(ops.transpose(ops.reshape(
        t, (-1, 28 // patch, patch, 28 // patch, patch, channels)), (0, 1, 3, 2, 4, 5)),
        (-1, 28 // patch, 28 // patch, patch * patch * channels)), name="fold")(x)
    x = layers.Conv2D(widths[0], 3, padding="same")(x)
    skips = []
    for i, width in enumerate(widths):
        for _ in range(blocks):
            x = res_block(x, emb, width)
        skips.append(x)
        if i < len(widths) - 1:
            x = layers.AveragePooling2D(2)(x)
    x = res_block(x, emb, widths[-1])
    if attention:
        x = attention_block(x)
    for i, width in reversed(list(enumerate(widths))):
        if i < len(widths) - 1:
            x = layers.UpSampling2D(interpolation="nearest")(x)
        x = res_block(layers.Concatenate()([x, skips[i]]), emb, width)
        for _ in range(blocks - 1):
            x = res_block(x, emb, width)
    x = layers.Activation("swish")(layers.GroupNormalization(8)(x))
    x = layers.Conv2D(patch * patch, 3, padding="same", kernel_initializer="zeros")(x)
    v = layers.Lambda(lambda t: ops.reshape(ops.transpose(ops.reshape(
        t, (-1, 28 // patch, 28 // patch, patch, patch)), (0, 1, 3, 2, 4)),
        (-1, 28, 28, 1)), name="unfold")(x)
    return keras.Model(inputs, v, name="unet")


def input_names(network):
    """The names of a build_unet network's inputs, in order."""
    return [tensor.name for tensor in network.inputs]


def takes_input(network, name):
    """Whether a build_unet network has the input `name` ("ink", "estimate") besides the three
    every one has (noisy, angle, label), which come first; "estimate" comes last."""
    return name in input_names(network)[3:]


def is_self_conditioned(network):
    """Whether a build_unet network takes its previous estimate of the clean digit."""
    return takes_input(network, "estimate")


def ink_share(images):
    """The share of the page each digit inks: its mean pixel over 255 (0 blank, 1 all black).
    Takes uint8 pictures (N x 28 x 28[ x 1]), as NumPy arrays or tensors."""
    from keras import ops

    return ops.mean(ops.reshape(ops.cast(images, "float32"), (ops.shape(images)[0], -1)), axis=1) / 255.0


def ink_quantiles(images, labels):
    """Per digit 0-9, INK_QUANTILES quantiles (0% to 100%) of the training digits' ink_share:
    what an ink-conditioned network's Sampler draws from, kept in the weights record."""
    shares = np.asarray(ink_share(images))
    levels = np.linspace(0.0, 1.0, INK_QUANTILES)
    # A digit the data lacks (tiny dry-run CSVs) draws from every digit's range.
    return [np.round(np.quantile(shares[labels == digit] if (labels == digit).any() else shares, levels), 6).tolist()
            for digit in range(analyze.NUM_CLASSES)]


def learning_rate_schedule(steps_per_epoch, epochs):
    """Linear warm-up, then cosine decay to 0 at the last epoch: without the decay the EMA
    samples keep a grey haze (issue 9: tinted digits 7% -> 0.2% at 20 epochs)."""
    import keras

    warmup = WARMUP_EPOCHS * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(epochs * steps_per_epoch - warmup, 1), warmup_target=PEAK_LEARNING_RATE,
        warmup_steps=warmup)


def loss_weights(angle, weighting):
    """Per-example weights of the v-prediction's squared error at noise angles `angle`."""
    import tensorflow as tf

    if weighting == "v":
        return tf.ones_like(angle)
    snr = tf.square(tf.cos(angle) / tf.sin(angle))
    return tf.minimum(snr, MIN_SNR_GAMMA) / (snr + 1.0)


def make_diffusion(config, scheduled=True, precision="float32", loss_weighting=LOSS_WEIGHTING):
    """The trainer: network + EMA copy + custom train_step. Its weights file is the checkpoint.

    The trained network computes in `precision` (analyze.network_in_precision: bfloat16 trains
    1.3-1.5x faster on the development CPU; the weights, their average and the loss stay float32).
    loss_weighting (LOSS_WEIGHTINGS) only changes training: a weighted run also reports the
    plain v loss, so its numbers compare with an unweighted run's.

    The optimizer's state is part of the checkpoint, and its layout differs between a
    scheduled learning rate (the default) and the constant one that weights trained before
    the schedule used, so `scheduled` must match the checkpoint being loaded. The real
    schedule is set when training starts, once the epoch length is known."""
    import keras
    import tensorflow as tf

    class Diffusion(keras.Model):
        def __init__(self):
            super().__init__()
            self.network = analyze.network_in_precision(build_unet(**config), precision)
            self.ema_network = build_unet(**config)
            self.ema_network.set_weights(self.network.get_weights())
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.v_loss_tracker = keras.metrics.Mean(name="v_loss") if loss_weighting != "v" else None
            self.built = True  # both networks are built; the wrapper has no weights of its own

        @property
        def metrics(self):
            return [self.loss_tracker, *([self.v_loss_tracker] if self.v_loss_tracker else [])]

        def first_estimate(self, inputs, c, s):
            """What a self-conditioned network is shown as its previous estimate: for half the
            batches its own estimate from no estimate (not trained through), as the sampler's
            later steps show it; for the rest zeros, as at the sampler's first step."""
            noisy = inputs[0]

            def own_estimate():
                v = tf.cast(self.network([*inputs, tf.zeros_like(noisy)], training=True), tf.float32)
                return tf.stop_gradient(tf.clip_by_value(c * noisy - s * v, -1.0, 1.0))

            return tf.cond(tf.random.uniform(()) < SELF_CONDITION_RATE, own_estimate, lambda: tf.zeros_like(noisy))

        def train_step(self, data):
            images, labels = data
            n = tf.shape(images)[0]
            x0 = analyze.to_signed_unit(images)
            angle = tf.random.uniform((n,), MIN_ANGLE, MAX_ANGLE)
            noise = tf.random.normal(tf.shape(x0))
            c, s = tf.cos(angle)[:, None, None, None], tf.sin(angle)[:, None, None, None]
            noisy = c * x0 + s * noise
            target_v = c * noise - s * x0
            dropped = tf.random.uniform((n,)) < LABEL_DROPOUT
            labels = tf.where(dropped, NULL_LABEL, tf.cast(labels, tf.int32))
            inputs = [noisy, angle, labels]
            if takes_input(self.network, "ink"):
                inputs.append(ink_share(images))
            if is_self_conditioned(self.network):
                inputs.append(self.first_estimate(inputs, c, s))
            with tf.GradientTape() as tape:
                v = tf.cast(self.network(inputs, training=True), tf.float32)
                per_example = tf.reduce_mean(tf.square(v - target_v), axis=[1, 2, 3])
                loss = tf.reduce_mean(loss_weights(angle, loss_weighting) * per_example)
            grads = tape.gradient(loss, self.network.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.network.trainable_weights))
            analyze.update_moving_average(self.network, self.ema_network, EMA_DECAY, self.optimizer.iterations)
            self.loss_tracker.update_state(loss)
            if self.v_loss_tracker is not None:
                self.v_loss_tracker.update_state(tf.reduce_mean(per_example))
            return {metric.name: metric.result() for metric in self.metrics}

    model = Diffusion()
    model.scheduled = scheduled
    rate = learning_rate_schedule(1, 1) if scheduled else PEAK_LEARNING_RATE
    model.compile(optimizer=keras.optimizers.AdamW(rate, weight_decay=1e-4, clipnorm=1.0))
    model.optimizer.build(model.network.trainable_weights)  # so a checkpoint can restore its state
    return model


def is_scheduled(record):
    """Whether a checkpoint was trained with the learning-rate schedule (see make_diffusion)."""
    return record is None or "learning_rate" in record.get("training", {})


def recorded_loss_weighting(record):
    """The loss weighting a run trained with (records from before the option: "v")."""
    return (record or {}).get("training", {}).get("loss_weighting", "v")


def load_diffusion(run, precision="float32", make_command=MAKE_COMMAND):
    """The trainer with the weights of a run from analyze.start_or_resume (mode 1 or 2),
    training with the loss weighting its record says. make_command: what failures say remakes it."""
    model = analyze.build_from_record(
        lambda config: make_diffusion(config, is_scheduled(run.record), precision,
                                      recorded_loss_weighting(run.record)),
        run.config, run.sources[0], make_command)
    return analyze.load_weights_or_fail(model, run.sources[0], make_command)


def load_ema_network(run, make_command=MAKE_COMMAND):
    """The moving-average network that draws: from its own file when the record vouches for
    it, else out of the checkpoint (runs saved before there was one, or an EMA file that is
    not this checkpoint's: copied in from another run, or saved just before an interruption)."""
    checkpoint, average = run.sources
    if not (average.is_file() and (run.record or {}).get("ema_sha256") == analyze.file_sha256(average)):
        return load_diffusion(run, make_command=make_command).ema_network
    network = analyze.build_from_record(lambda config: build_unet(**config), run.config, checkpoint,
                                        make_command)
    return analyze.load_weights_or_fail(network, average, make_command)


# =========================================================================================
# Sampling
# =========================================================================================

def sampling_angles(steps, spacing=SPACING):
    """The steps+1 noise angles a sampler walks, from pure noise down to 0 (the clean digit).

    "angle" (the default): evenly spaced in angle, so the last estimate of the clean digit is
    made at angle (pi/2)/steps. "logsnr": evenly spaced in log signal-to-noise ratio between
    pi/2 - MIN_ANGLE and MIN_ANGLE, the smallest noise the network was trained on, so the last
    estimate is made where almost no noise is left. Measured on the shipped weights (README),
    "logsnr" left the paper greyer, not cleaner: the network is weakest at its smallest noise."""
    if spacing not in SPACINGS:
        raise DataError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    if spacing == "angle":
        return np.append(np.maximum(np.linspace(MAX_ANGLE, 0.0, steps + 1)[:-1], MIN_ANGLE), 0.0)
    noise_to_signal = np.geomspace(np.tan(MAX_ANGLE - MIN_ANGLE), np.tan(MIN_ANGLE), steps)
    return np.append(np.arctan(noise_to_signal), 0.0)


def in_interval(angles, interval):
    """Per angle: whether its noise-to-signal ratio tan(angle) lies in interval (low, high]."""
    low, high = interval
    return [bool(low < np.tan(angle) <= high) for angle in angles]


def solver_coefficients(angles, solver="ddim", eta=ETA):
    """Per step i (angles[i] -> angles[i+1]): the update x' = a x + b (c1 x0 + c2 x0_prev) + sigma z,
    where x0 is this step's estimate of the clean digit and x0_prev the previous step's.
    eta is one value for every step, or one per step.

    DDIM is first order (c1 = 1, c2 = 0); eta > 0 swaps part of its deterministic noise for
    fresh noise z. DPM-Solver++(2M) (Lu et al. 2022) extrapolates the estimate linearly in
    log signal-to-noise from the last two steps, so fewer steps reach the same digits; its
    first step, and the last one (to zero noise, where the log ratio is infinite), are DDIM's.
    The same extrapolation on top of eta = 1 is DPM-Solver++(2M) SDE (the midpoint form).
    Written with signal = cos(angle) and noise = sin(angle); c1 + c2 = 1 always, so an exact
    estimate stays exact."""
    angles = np.maximum(np.asarray(angles, np.float64), 0.0)
    etas = np.broadcast_to(np.asarray(eta, np.float64), (len(angles) - 1,))
    rows = []
    log_snr = np.log(np.cos(angles[:-1]) / np.sin(angles[:-1]))  # finite: angles[:-1] >= MIN_ANGLE
    for i in range(len(angles) - 1):
        c, s = np.cos(angles[i]), np.sin(angles[i])
        c_next, s_next = np.cos(angles[i + 1]), np.sin(angles[i + 1])
        # DDIM's sigma with alpha_bar = cos^2: eta=0 is deterministic, 1 is DDPM-like.
        sigma = etas[i] * np.sqrt(max(s_next ** 2 / s ** 2 * (1 - c ** 2 / max(c_next ** 2, 1e-12)), 0.0))
        sigma = min(sigma, s_next)
        a = np.sqrt(s_next ** 2 - sigma ** 2) / s
        b = c_next - a * c
        c2 = 0.0
        if solver == "dpm++2m" and 0 < i and s_next > 0:
            h = np.log(c_next / s_next) - log_snr[i]
            r = (log_snr[i] - log_snr[i - 1]) / h
            c2 = -1 / (2 * r)
        rows.append((a, b, 1 - c2, c2, sigma))
    return np.array(rows, np.float32)


def blank_paper(digits, paper_level):
    """uint8 digits with every pixel at or below paper_level set to 0 (in place; returned)."""
    digits[digits <= paper_level] = 0
    return digits


class Sampler:
    """DDIM or DPM-Solver++(2M) over the angle schedule, with classifier-free guidance and,
    given a weak network, autoguidance.

    Each step passes the whole batch through the network, conditional and unconditional
    copies together (only the conditional one outside the guidance interval), and through the
    weak network inside the autoguidance interval (each network one compiled graph,
    _forward_pass), then takes the solver's update with coefficients worked out beforehand
    (solver_coefficients).

    An ink-conditioned network is told each digit's ink share, drawn from its class's
    quantiles (ink_quantiles, from the weights record), the same in every pass."""

    def __init__(self, network, ink_quantiles=None, compiled=True, weak_network=None):
        self.network, self.weak_network = network, weak_network
        self.self_conditioned = is_self_conditioned(network)
        self.ink_conditioned = takes_input(network, "ink")
        if self.ink_conditioned and ink_quantiles is None:
            raise DataError("an ink-conditioned network needs ink quantiles to draw from (recorded_ink_quantiles)")
        if weak_network is not None:
            check_weak_network(weak_network, network)
        self.ink_quantiles = ink_quantiles
        # What with_steps draws with when not told: SAMPLER_DEFAULTS, or without a weak network WITHOUT_WEAK_NETWORK's.
        self.defaults = {**SAMPLER_DEFAULTS, **({} if weak_network is not None else WITHOUT_WEAK_NETWORK)}
        self._network_pass = self._forward_pass(network, compiled)
        self._weak_pass = None if weak_network is None else self._forward_pass(weak_network, compiled)

    def draw_ink(self, labels, rng):
        """Each digit's ink share, drawn from its class's quantiles (none for other networks,
        so their random stream, and their digits, stay what they were)."""
        if not self.ink_conditioned:
            return np.zeros(len(labels), np.float32)
        chances = rng.uniform(size=len(labels))
        levels = np.linspace(0.0, 1.0, len(self.ink_quantiles[0]))
        return np.array([np.interp(chance, levels, self.ink_quantiles[label])
                         for chance, label in zip(chances, labels)], np.float32)

    @staticmethod
    def _forward_pass(network, compiled):
        """network(inputs), compiled (on its first call) once for any batch size: n digits, or 2n
        with the unconditional copies. The step itself runs eagerly: its arithmetic is a few
        element-wise operations, while optimizing a graph of the whole step for each (guided,
        autoguided) variant, five copies of the U-Net in all, cost seconds of every command's
        start-up (benchmarks/README, "Start-up": the first draw ~3 s sooner on EPYC-AVX2, the
        web page's server ~11 s). Both networks in one compiled call drew 16 digits ~10% faster
        but gave back most of that start-up: a graph holding both took longer to prepare than
        the two alone."""
        import tensorflow as tf

        def forward(inputs):
            return network(inputs, training=False)

        if not compiled:
            return forward
        signature = [[tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype) for tensor in network.inputs]]
        # No autograph: the pass has no Python control flow, and autograph would re-read this
        # file's source when it traces, so a long run broke when the file was edited under it
        # (session 19).
        return tf.function(forward, input_signature=signature, autograph=False)

    def _denoise_step(self, x, labels, inks, angle, guidance, autoguidance, coefficients, x0_prev, fresh_noise,
                      guided, autoguided):
        import tensorflow as tf

        n = tf.shape(x)[0]
        # The steps add up in float32, whatever the network computes in (analyze.network_in_precision).
        told = [inks] * self.ink_conditioned + [x0_prev] * self.self_conditioned  # in build_unet's order
        if guided:  # the conditional and unconditional copies in one batch
            both = tf.cast(self._network_pass([tf.concat([x, x], 0), tf.fill((2 * n,), angle),
                                               tf.concat([labels, tf.fill((n,), NULL_LABEL)], 0),
                                               *[tf.concat([t, t], 0) for t in told]]), tf.float32)
            v_cond, v_uncond = both[:n], both[n:]
            v = v_uncond + guidance * (v_cond - v_uncond)
        else:
            v_cond = v = tf.cast(self._network_pass([x, tf.fill((n,), angle), labels, *told]), tf.float32)
        if autoguided:  # v_cond + (w - 1)(v_cond - v_weak), on top of any classifier-free guidance
            v_weak = tf.cast(self._weak_pass([x, tf.fill((n,), angle), labels, *told]), tf.float32)
            v = v + (autoguidance - 1.0) * (v_cond - v_weak)
        x0 = tf.clip_by_value(tf.cos(angle) * x - tf.sin(angle) * v, -1.0, 1.0)  # data lives in [-1, 1]
        a, b, c1, c2, sigma = tf.unstack(coefficients)
        return a * x + b * (c1 * x0 + c2 * x0_prev) + sigma * fresh_noise, x0

    def __call__(self, labels, seed=SEED, **settings):
        """uint8 digits (N x 28 x 28, 0 = background) of the requested labels."""
        return self.with_steps(labels, seed, keep_steps=False, **settings)[0]

    def with_steps(self, labels, seed=SEED, steps=STEPS, solver=SOLVER, spacing=SPACING, guidance=None,
                   guidance_interval=GUIDANCE_INTERVAL, autoguidance=None,
                   autoguidance_interval=AUTOGUIDANCE_INTERVAL, eta=ETA, eta_interval=ETA_INTERVAL,
                   paper_level=PAPER_LEVEL, batch_size=SAMPLING_BATCH, progress=False, keep_steps=True):
        """(digits, steps): the digits, and uint8 steps x N x 28 x 28 pictures of the clean
        digit as the network estimated it at each step (empty unless keep_steps).

        guidance and autoguidance left None take self.defaults' (which depend on whether there
        is a weak network).

        Guidance applies while the noise-to-signal ratio tan(angle) lies in guidance_interval
        (low, high]; elsewhere the plain conditional prediction is used, which also halves
        those steps' cost. Autoguidance applies only while tan(angle) lies in
        autoguidance_interval, at one pass of the weak network a digit-step there. Fresh noise
        (eta) is likewise added only at steps whose tan(angle) lies in eta_interval (None: at every step), and drawn only for those, so
        an interval no step falls in draws eta 0's digits. Pixels at or below paper_level
        become 0: the network's estimate of blank paper is a mean over what could be there,
        a few grey levels above 0, where MNIST's paper is exactly 0 (README, "The paper")."""
        import keras
        import tensorflow as tf

        if solver not in SOLVERS:
            raise DataError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        guidance = self.defaults["guidance"] if guidance is None else guidance
        autoguidance = self.defaults["autoguidance"] if autoguidance is None else autoguidance
        rng = np.random.default_rng(seed)
        angles = sampling_angles(steps, spacing)
        in_noise_band = in_interval(angles[:-1], eta_interval) if eta_interval else [True] * steps
        noisy = [eta > 0 and inside for inside in in_noise_band]
        coefficients = solver_coefficients(angles, solver, eta * np.array(noisy, np.float64))
        guided = [guidance != 1 and inside for inside in in_interval(angles[:-1], guidance_interval)]
        autoguided = [autoguidance != 1 and inside for inside in in_interval(angles[:-1], autoguidance_interval)]
        if any(autoguided) and self.weak_network is None:
            raise DataError("autoguidance needs a weak network (load_weak_network), or --autoguidance 1")

        def pixels(x0):
            return blank_paper(analyze.from_signed_unit(x0), paper_level)

        digits, estimates = [], []
        bar = (keras.utils.Progbar(len(labels) * steps, unit_name="digit-step",
                                   verbose=analyze.progress_verbosity()) if progress else None)
        for start in range(0, len(labels), batch_size):
            batch_labels = tf.constant(labels[start:start + batch_size], tf.int32)
            n = len(batch_labels)
            inks = tf.constant(self.draw_ink(labels[start:start + batch_size], rng))
            x = tf.constant(rng.standard_normal((n, 28, 28, 1), dtype=np.float32))
            x0 = tf.zeros_like(x)
            batch_estimates = []
            for i in range(steps):
                noise = tf.constant(rng.standard_normal((n, 28, 28, 1), dtype=np.float32)
                                    if noisy[i] else np.zeros((n, 28, 28, 1), np.float32))
                x, x0 = self._denoise_step(
                    x, batch_labels, inks, tf.constant(angles[i], tf.float32), tf.constant(guidance, tf.float32),
                    tf.constant(autoguidance, tf.float32), tf.constant(coefficients[i]), x0, noise,
                    guided[i], autoguided[i])
                if keep_steps:
                    batch_estimates.append(pixels(x0))
                if bar:
                    bar.add(n)
            digits.append(pixels(x0))  # the last step's x0 is the clean prediction
            estimates.append(np.stack(batch_estimates, 0) if keep_steps else np.zeros((0, n, 28, 28), np.uint8))
        return np.concatenate(digits), np.concatenate(estimates, axis=1)


def recorded_ink_quantiles(run):
    """The ink quantiles an ink-conditioned run's record keeps (None for other networks),
    checked, so a missing or damaged list is one clear line, said before anything loads."""
    if not run.config["ink"]:
        return None
    weights = run.sources[0] if run.sources else run.targets[0]
    try:
        table = np.asarray(run.record["ink_quantiles"], np.float64)
        valid = (table.ndim == 2 and table.shape[0] == analyze.NUM_CLASSES and table.shape[1] >= 2
                 and np.isfinite(table).all() and (table >= 0).all() and (table <= 1).all()
                 and (np.diff(table, axis=1) >= 0).all())
    except (KeyError, ValueError, TypeError):
        valid = False
    if not valid:
        raise DataError(f"{analyze.display_path(analyze.record_path(weights))}: an ink-conditioned network's "
                        f"\"ink_quantiles\" should be {analyze.NUM_CLASSES} rising lists of ink shares (0-1), one "
                        f"per digit; restore the record or remake the weights with `{MAKE_COMMAND} --ink`")
    return table.tolist()


def weak_make_command(folder):
    """How to make a weak network in `folder` as the shipped one was (README, "Autoguidance")."""
    return f"{MAKE_COMMAND} {WEAK_RECIPE} --weights-dir {analyze.display_path(folder)}"


def has_weak_network(weights_dir):
    """Whether <weights_dir>/autoguide (WEAK_DIR) holds a run."""
    return (Path(weights_dir) / WEAK_DIR / WEIGHT_FILES[0]).is_file()


def uses_weak_network(weights_dir, autoguidance=None):
    """Whether drawing at `autoguidance` (None: the defaults') takes the weak network in
    <weights_dir>/autoguide: 1 never does, any other scale needs it (load_weak_network says so
    in one line when it is missing), and the defaults use it where there is one."""
    if autoguidance is None:
        return AUTOGUIDANCE != 1 and has_weak_network(weights_dir)
    return autoguidance != 1


def load_weak_network(weights_dir):
    """The EMA network of the run in <weights_dir>/autoguide (WEAK_DIR): the weak network
    autoguidance steers away from, made by this script like any other run. A missing or broken
    one is a one-line DataError naming the command that makes it."""
    folder = Path(weights_dir) / WEAK_DIR
    make_command = weak_make_command(folder)
    if not has_weak_network(weights_dir):  # said before TensorFlow loads
        raise DataError(f"autoguidance needs a weak network and {analyze.display_path(folder)} has none; make it "
                        f"with `{make_command}`, or draw without it (--autoguidance 1)")
    run = analyze.start_or_resume(2, folder, WEIGHT_FILES, MODEL_CONFIG, BUILDER, make_command,
                                  legacy_config=LEGACY_CONFIG)
    return load_ema_network(run, make_command)


def check_weak_network(weak_network, network):
    """A one-line DataError unless the weak network takes the inputs of the network it guides."""
    if input_names(weak_network) != input_names(network):
        raise DataError(f"the weak network takes {', '.join(input_names(weak_network))} but the network it "
                        f"guides takes {', '.join(input_names(network))}: autoguidance needs the same inputs "
                        "(an --ink network needs an --ink weak one)")


def run_sampler(network, run, precision="auto", weak_network=None):
    """A Sampler on `network` (a run's EMA network) with what the run's record says it is told."""
    def cast(model):
        return None if model is None else analyze.network_in_precision(model, precision)
    return Sampler(cast(network), recorded_ink_quantiles(run), weak_network=cast(weak_network))


def load_sampler(weights_dir=analyze.WEIGHTS_DIR, precision="auto", autoguidance=None):
    """The generator contract (analyze.GENERATOR_SCRIPTS): a Sampler on the EMA weights, and on
    the weak network beside them if drawing at `autoguidance` takes it (uses_weak_network)."""
    run = analyze.start_or_resume(2, weights_dir, WEIGHT_FILES, MODEL_CONFIG, BUILDER, MAKE_COMMAND,
                                  legacy_config=LEGACY_CONFIG)
    recorded_ink_quantiles(run)  # a damaged record is said before the network loads
    weak_network = load_weak_network(weights_dir) if uses_weak_network(weights_dir, autoguidance) else None
    return run_sampler(load_ema_network(run), run, precision, weak_network)


# =========================================================================================
# Training
# =========================================================================================

def precision_history(training, precision):
    """The record's training "precision": what its epochs computed in, in order, when a
    resumed run changed it (records from before the key trained in float32)."""
    if not training.get("epochs"):
        return precision
    before = training.get("precision", "float32")
    return before if before.rsplit(", then ", 1)[-1] == precision else f"{before}, then {precision}"


def training_precision(precision):
    """What --precision trains in. "auto" trains in float32: bfloat16 trains 1.3-1.5x faster on a
    CPU with AVX512-BF16 (the AMD EPYC of README's "Precision"), but whether its digits are as
    good as float32's is not measured yet."""
    return analyze.resolve_precision("float32" if precision == "auto" else precision)


def train(args, model, run, precision, loss_weighting):
    images, labels = analyze.load_digits_csv(args.csv)
    print(f"training on {len(images):,} digits from {analyze.display_path(args.csv)} (the network in {precision})")
    batches = analyze.training_batches(images, labels, args.batch_size, args.seed,
                                       DRY_RUN_BATCHES if args.dry_run else None)
    preview_labels = analyze.requested_labels(None, 2)
    (weights, average), record = run.targets, run.record
    if run.config["ink"] and not run.sources:  # a continued run keeps its own (checked in main)
        record["ink_quantiles"] = ink_quantiles(images, labels)

    def checkpoint(epoch):
        analyze.save_weights_atomic(model.ema_network, average)
        analyze.save_weights_atomic(model, weights)
        record["ema_sha256"] = analyze.file_sha256(average)  # the record is written last: see load_ema_network
        analyze.write_json_atomic(record, analyze.record_path(weights))
        preview = run_sampler(model.ema_network, run, "float32")(preview_labels, seed=SEED)
        analyze.save_image_grid(preview, Path(args.figures_dir) / "diffusion_progress.png",
                                columns=10, title=f"EMA samples after epoch {epoch}")

    epochs = record["training"].get("epochs", 0) + 1 if args.dry_run else args.epochs
    if model.scheduled:
        # Same command, same schedule: the optimizer's step count (in the checkpoint) says
        # where on it a resumed run stands. A larger --epochs stretches the cosine.
        model.optimizer.learning_rate = learning_rate_schedule(len(batches), epochs)
        record["training"]["learning_rate"] = {"peak": PEAK_LEARNING_RATE, "warmup_epochs": WARMUP_EPOCHS,
                                               "decay": "cosine to 0", "over_epochs": epochs}
    analyze.fit_resumably(model, batches, record, epochs, args.stop_after,
                          {"csv": analyze.display_path(args.csv), "batch_size": args.batch_size,
                           "seed": args.seed, "precision": precision_history(record["training"], precision),
                           "loss_weighting": loss_weighting},
                          checkpoint)


def ask_mode():
    """The interactive prompt; re-asks on bad answers, exits 2 at end of input."""
    print("What should train_diffusion.py do?")
    for key, meaning in MODES.items():
        print(f"  {key} = {meaning}")
    while True:
        try:
            answer = input("mode [0/1/2]: ").strip()
        except EOFError:
            print("\nerror: no answer at the mode prompt (end of input); pass --mode 0, 1 or 2",
                  file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("\nerror: interrupted at the mode prompt; nothing was done", file=sys.stderr)
            sys.exit(130)
        if answer in MODES:
            return int(answer)
        print(f"  {answer!r} is not a mode: type 0, 1 or 2 and press Enter")


SAMPLER_FLAGS = tuple(SAMPLER_DEFAULTS)
INTERVAL_FLAGS = ("guidance_interval", "autoguidance_interval", "eta_interval")  # LOW HIGH pairs of tan(angle)


def add_sampler_arguments(parser):
    """The Sampler's settings as flags (dests SAMPLER_FLAGS); benchmarks/cas.py takes them too."""
    parser.add_argument("--steps", type=int, default=STEPS, help="sampling steps")
    parser.add_argument("--solver", choices=SOLVERS, default=SOLVER,
                        help="ddim (first order) or dpm++2m (second order: fewer steps for the same digits)")
    parser.add_argument("--spacing", choices=SPACINGS, default=SPACING,
                        help="steps evenly spaced in noise angle, or in log signal-to-noise ratio "
                             "(a smaller last step; greyer paper with the shipped weights)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance scale (1 = plain conditional, 0 = unconditional; default: "
                             f"{GUIDANCE:g} with a weak network in <weights-dir>/{WEAK_DIR}, "
                             f"{WITHOUT_WEAK_NETWORK['guidance']:g} without)")
    parser.add_argument("--guidance-interval", type=float, nargs=2, default=list(GUIDANCE_INTERVAL),
                        metavar=("LOW", "HIGH"),
                        help="guide only at noise-to-signal ratios tan(angle) in (LOW, HIGH]")
    parser.add_argument("--autoguidance", type=float, default=None,
                        help=f"autoguidance scale: guide away from the weak network in <weights-dir>/{WEAK_DIR} "
                             f"(1 = off; default: {AUTOGUIDANCE:g} if there is one, else off)")
    parser.add_argument("--autoguidance-interval", type=float, nargs=2, default=list(AUTOGUIDANCE_INTERVAL),
                        metavar=("LOW", "HIGH"),
                        help="autoguide only at noise-to-signal ratios tan(angle) in (LOW, HIGH]")
    parser.add_argument("--paper-level", type=int, default=PAPER_LEVEL,
                        help="pixels at or below this grey level (0-255) are drawn as blank paper (0 = as estimated)")
    parser.add_argument("--eta", type=float, default=ETA,
                        help="fresh noise at every step (or those of --eta-interval): 0 deterministic, 1 DDPM-like "
                             "(with dpm++2m, 1 is DPM-Solver++(2M) SDE)")
    parser.add_argument("--eta-interval", type=float, nargs=2, default=ETA_INTERVAL, metavar=("LOW", "HIGH"),
                        help="add the fresh noise of --eta only at noise-to-signal ratios tan(angle) in (LOW, HIGH] "
                             "(default: at every step)")


def check_sampler_arguments(parser, args):
    """A one-line usage error (exit 2) for settings the Sampler cannot draw with."""
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    for flag in ("guidance", "autoguidance"):
        if (getattr(args, flag) or 0) < 0:
            parser.error(f"--{flag} must be 0 or more")
    if not 0 <= args.paper_level <= 255:
        parser.error(f"--paper-level must be 0-255, got {args.paper_level}")
    if not 0 <= args.eta <= 1:
        parser.error("--eta must be between 0 and 1")
    if args.eta_interval is not None and args.eta == 0:
        parser.error("--eta-interval says where the fresh noise of --eta goes: give --eta above 0 too")
    for flag in INTERVAL_FLAGS:
        low, high = getattr(args, flag) or (0, 1)  # None: every step
        if not 0 <= low < high:
            parser.error(f"--{flag.replace('_', '-')} needs 0 <= LOW < HIGH")


def sampler_settings(args):
    """The Sampler's keyword arguments from parsed sampler flags."""
    settings = {flag: getattr(args, flag) for flag in SAMPLER_FLAGS}
    for flag in INTERVAL_FLAGS:
        settings[flag] = None if settings[flag] is None else tuple(settings[flag])
    return settings


def parse_args(argv=None):
    parser = analyze.generator_parser(
        "Train the class-conditional diffusion model and/or draw digits with it.", default_mode=None,  # None: ask
        num_per_digit=NUM_PER_DIGIT, epochs=EPOCHS, batch_size=BATCH_SIZE, seed=SEED,
        figures="ddim_generated_<d>.png and diffusion_progress.png",
        dry_run=f"train {DRY_RUN_BATCHES} batches for one epoch and sample with 2 steps; it never writes into weights/ nor over weights a real run made")
    parser.add_argument("--widths", type=int, nargs=2, default=None, metavar=("FINE", "COARSE"),
                        help="a new run's channels at the 14x14 and 7x7 resolutions, multiples of 8 (default: "
                             f"{' '.join(map(str, MODEL_CONFIG['widths']))}; a continued run keeps its record's; "
                             "a weak network for autoguidance is smaller)")
    parser.add_argument("--attention", action=argparse.BooleanOptionalAction, default=None,
                        help="a new run's network adds self-attention over the 7x7 positions (default: "
                             f"{MODEL_CONFIG['attention']}; a continued run keeps its record's)")
    parser.add_argument("--blocks", type=int, default=None, metavar="N",
                        help="a new run's residual blocks at each resolution, down and up (default: "
                             f"{MODEL_CONFIG['blocks']}; a continued run keeps its record's)")
    parser.add_argument("--ink", action=argparse.BooleanOptionalAction, default=None,
                        help="a new run's network is told how much of the page each digit inks, and draws it from "
                             f"the training digits' range (default: {MODEL_CONFIG['ink']}; a continued run keeps its "
                             "record's)")
    parser.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS, default=None,
                        help="a new run's loss: v (plain v-prediction error) or min-snr (Min-SNR-gamma "
                             f"weighting, gamma {MIN_SNR_GAMMA:g}) (default: {LOSS_WEIGHTING}; a continued run "
                             "keeps its record's)")
    add_sampler_arguments(parser)
    args = analyze.parse_generator_args(parser, argv)
    check_sampler_arguments(parser, args)
    if args.blocks is not None and args.blocks < 1:
        parser.error(f"--blocks must be at least 1, got {args.blocks}")
    if args.widths is not None and any(width < 8 or width % 8 for width in args.widths):
        parser.error(f"--widths must be multiples of 8 (the blocks normalize in 8 groups), got {args.widths}")
    return args


def main(argv=None):
    args = parse_args(argv)
    mode = args.mode if args.mode is not None else ask_mode()
    with analyze.generator_errors() as session:
        chosen = {flag: getattr(args, flag) for flag in NETWORK_FLAGS if getattr(args, flag) is not None}
        run = session.run = analyze.start_or_resume(mode, args.weights_dir, WEIGHT_FILES, {**MODEL_CONFIG, **chosen},
                                                    BUILDER, MAKE_COMMAND, args.dry_run, LEGACY_CONFIG)
        built = [f"{flag}={run.config[flag]}" for flag, value in chosen.items() if run.config[flag] != value]
        if built:
            raise DataError(f"the network in {analyze.display_path(args.weights_dir)} was built with "
                            f"{', '.join(built)}; {', '.join('--' + f for f in NETWORK_FLAGS)} choose for "
                            "new runs (--mode 0)")
        if run.sources:
            recorded_ink_quantiles(run)  # a damaged record is said before anything loads or trains
        loss_weighting = recorded_loss_weighting(run.record) if run.sources else args.loss_weighting or LOSS_WEIGHTING
        if args.loss_weighting not in (None, loss_weighting):
            raise DataError(f"the run in {analyze.display_path(args.weights_dir)} trained with --loss-weighting "
                            f"{loss_weighting}; --loss-weighting chooses for new runs (--mode 0)")
        weak_network = None
        if args.autoguidance is None and AUTOGUIDANCE != 1 and not has_weak_network(args.weights_dir):
            print(f"no weak network in {analyze.display_path(Path(args.weights_dir) / WEAK_DIR)}: drawing with "
                  "classifier-free guidance alone (README, \"Autoguidance\")")
        if uses_weak_network(args.weights_dir, args.autoguidance):
            weak_network = load_weak_network(args.weights_dir)
        analyze.set_seed(args.seed)
        if run.mode == 2:
            network = load_ema_network(run)
        else:
            precision = training_precision(args.precision)
            model = (load_diffusion(run, precision) if run.sources
                     else make_diffusion(run.config, precision=precision, loss_weighting=loss_weighting))
            network = model.ema_network
        if weak_network is not None:  # one that cannot guide this run is said before training
            check_weak_network(weak_network, network)
        if run.mode != 2:
            train(args, model, run, precision, loss_weighting)

        sampler = run_sampler(network, run, args.precision, weak_network)
        settings = {**sampler_settings(args), **({"steps": 2} if args.dry_run else {})}
        analyze.draw_and_save(lambda labels: sampler(labels, args.seed, progress=True, **settings),
                              args, "ddim_generated")


if __name__ == "__main__":
    main()
