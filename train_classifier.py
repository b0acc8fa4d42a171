"""Train the digit classifier on dataset/Train.csv and save it to weights/.

    python train_classifier.py                          # the compact CNN: ~99.6% on the MNIST test set in minutes
    python train_classifier.py --arch wide --members 2  # how the shipped weights were made: two wider CNNs, averaged
    python train_classifier.py --arch mlp               # the seed's dense network, under a minute
    python train_classifier.py --dry-run                # a few batches, to check the plumbing

All train on randomly rotated, shifted, scaled and sheared digits (half of them for the short
runs of cnn and mlp, every one for wide), 30% thickened or thinned, so they also read
handwriting that is less tidy than MNIST's (and the MLP overfits less). Validation, the
best-epoch checkpoint and the saved weights use a moving average of the weights over the last
~100 steps. An interrupted run (Ctrl-C, crash) resumes from its last finished epoch when
started again with the same arguments, and finished weights replace existing ones only if they
are at least as accurate.

This file is the one home of the classifier architecture: analyze_classifier.py and
analyze.py rebuild it with build_classifier() / load_classifier().
"""

import argparse
import math
import time
from pathlib import Path

import analyze
from analyze import DataError

# -- model --------------------------------------------------------------------------------
ARCHS = ("cnn", "wide", "mlp")
DEFAULT_WEIGHTS = {"cnn": analyze.CLASSIFIER_WEIGHTS, "wide": analyze.CLASSIFIER_WEIGHTS,
                   "mlp": analyze.WEIGHTS_DIR / "classifier_mlp.weights.h5"}

# -- training -----------------------------------------------------------------------------
EPOCHS = {"cnn": 8, "wide": 30, "mlp": 26}
BATCH_SIZE = 128
PEAK_LEARNING_RATE = {"cnn": 3e-3, "wide": 3e-3, "mlp": 1e-3}
WEIGHT_DECAY = 1e-4
LABEL_SMOOTHING = 0.05
# The optimizer keeps a moving average of the weights; validation, the best-epoch checkpoint
# and the saved weights use it. Averaging the last ~100 steps smooths out the noise of a high
# learning rate, so a short run is accurate early.
EMA_MOMENTUM = 0.99
SEED = 42
DRY_RUN_BATCHES = 3

# -- augmentation: how untidy the training digits get ----------------------
MAX_ROTATION_DEGREES = 12
MAX_SHIFT_PIXELS = 3
SCALE_RANGE = (0.85, 1.15)
MAX_SHEAR = 0.2
# The rest are seen as written: a short run learns faster from both; a long one can afford
# to see every digit warped.
WARP_PROBABILITY = {"cnn": 0.5, "wide": 1.0, "mlp": 0.5}
STROKE_CHANGE_PROBABILITY = 0.3  # half thicken, half thin


def build_classifier(arch="cnn", members=1):
    """The classifier: float 28x28x1 pixels in 0-255 -> 10 softmax probabilities.

    Every architecture has a layer named "features" (the penultimate activations), which
    analyze.py uses for MNIST-FID. With members > 1, that many networks read each digit side
    by side: their probabilities are averaged and their features put end to end.
    """
    import keras
    from keras import layers

    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if members < 1:
        raise ValueError(f"members must be at least 1, not {members}")

    def conv_bn_relu(x, filters):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    inputs = keras.Input((28, 28, 1), name="pixels")
    if members > 1:
        networks = [build_classifier(arch) for _ in range(members)]
        width = networks[0].get_layer("features").units
        trunks = [keras.Model(net.input, net.get_layer("features").output, name=f"network_{i}")
                  for i, net in enumerate(networks)]
        # Each head reads its own network's slice of the joined features, so that "features"
        # lies on the way to the output and stays part of the model.
        features = layers.Concatenate(name="features")([trunk(inputs) for trunk in trunks])
        heads = [layers.Dense(10, activation="softmax", name=f"digit_{i}")(features[:, i * width:(i + 1) * width])
                 for i in range(members)]
        return keras.Model(inputs, layers.Average(name="digit")(heads), name=f"classifier_{arch}_x{members}")
    x = layers.Rescaling(1 / 255)(inputs)
    if arch == "mlp":  # the seed repository's network, unchanged
        x = layers.Flatten()(x)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dense(64, activation="relu", name="features")(x)
    else:
        if arch == "wide":  # BatchNorm from the first layer on, two convolutions at 14x14
            x = conv_bn_relu(x, 32)
            x = layers.MaxPooling2D()(x)
            x = conv_bn_relu(conv_bn_relu(x, 64), 64)
        else:
            # Sized for two CPU cores: one convolution per resolution (28, 14, 7), and at 28x28,
            # where every operation is bound by memory rather than arithmetic, only 16 channels
            # and no normalization.
            x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
            x = layers.MaxPooling2D()(x)
            x = conv_bn_relu(x, 64)
        x = layers.MaxPooling2D()(x)
        x = conv_bn_relu(x, 128)
        x = layers.Flatten()(x)
        x = layers.Dropout(0.3)(x)
        x = layers.Dense(128, activation="relu", name="features")(x)
        x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(10, activation="softmax", name="digit")(x)
    return keras.Model(inputs, outputs, name=f"classifier_{arch}")


def load_classifier(weights_path=analyze.CLASSIFIER_WEIGHTS):
    """Rebuild the classifier described by the record beside `weights_path` and load it; its
    architecture is model.name after "classifier_"."""
    make_command = "python train_classifier.py"
    config = analyze.checked_config(analyze.existing_record(weights_path, make_command), {"arch": "cnn", "members": 1},
                                    weights_path, make_command)
    model = analyze.build_from_record(lambda c: build_classifier(**c), config, weights_path, make_command)
    members = f" --members {config['members']}" if config["members"] > 1 else ""
    return analyze.load_weights_or_fail(model, weights_path, f"{make_command} --arch {config['arch']}{members}")


def augment(images, warp_probability):
    """Random affine warp and stroke-width change of a batch (float, 0-255, N x 28 x 28 x 1)."""
    import keras
    from keras import ops

    n = ops.shape(images)[0]
    rand = lambda low, high: keras.random.uniform((n,), low, high)  # noqa: E731
    angle = rand(-1.0, 1.0) * math.radians(MAX_ROTATION_DEGREES)
    scale = ops.exp(rand(math.log(SCALE_RANGE[0]), math.log(SCALE_RANGE[1])))
    shear = rand(-MAX_SHEAR, MAX_SHEAR)
    shift_x, shift_y = rand(-MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS), rand(-MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS)
    # Output pixel (x, y) samples input M @ ((x, y) - c) + c + shift, with M = rotation * shear / scale.
    cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
    m00, m01, m10, m11 = cos, cos * shear - sin, sin, sin * shear + cos
    c = 13.5
    transform = ops.stack([m00, m01, c - m00 * c - m01 * c + shift_x,
                           m10, m11, c - m10 * c - m11 * c + shift_y,
                           ops.zeros((n,)), ops.zeros((n,))], axis=1)
    warped = ops.image.affine_transform(images, transform, interpolation="bilinear",
                                        fill_mode="constant")
    warped = ops.where(keras.random.uniform((n, 1, 1, 1)) < warp_probability, warped, images)
    thick = ops.max_pool(warped, 2, strides=1, padding="same")
    thin = -ops.max_pool(-warped, 2, strides=1, padding="same")
    choice = keras.random.uniform((n, 1, 1, 1))
    p = STROKE_CHANGE_PROBABILITY / 2
    return ops.where(choice < p, thick, ops.where(choice < 2 * p, thin, warped))


def make_dataset(images, labels, batch_size, shuffle, warp_probability, seed):
    """Batches of (pixels, one-hot digit); warp_probability=None leaves the digits as written,
    a number augments them all (and warps that fraction)."""
    import tensorflow as tf

    # One-hot targets because label smoothing needs them.
    targets = tf.one_hot(labels.astype("int32"), analyze.NUM_CLASSES)
    ds = tf.data.Dataset.from_tensor_slices((analyze.to_model_input(images), targets))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if warp_probability is not None:
        ds = ds.map(lambda x, y: (augment(x, warp_probability), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def compile_classifier(model, arch, steps_total):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(steps_total, 1), warmup_target=PEAK_LEARNING_RATE[arch],
        warmup_steps=max(steps_total // 20, 1))
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=WEIGHT_DECAY, use_ema=True,
                                       ema_momentum=EMA_MOMENTUM)
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
                  metrics=["accuracy"])


def prepare_training(arch, images, labels, batch_size, epochs, augmented, seed, max_batches=None):
    """The recipe in one place, for this script and the benchmarks that train the same CNN:
    a fresh network, compiled for a learning-rate schedule as long as the run, and its
    shuffled training batches (the first max_batches of each epoch, if given). The network is
    built first: its starting weights come from the seed, as they did before this helper."""
    model = build_classifier(arch)
    batches = make_dataset(images, labels, batch_size, True, WARP_PROBABILITY[arch] if augmented else None, seed)
    if max_batches is not None:
        batches = batches.take(max_batches)
    compile_classifier(model, arch, len(batches) * epochs)
    return model, batches


def clear_backup_and_restore():
    """keras.callbacks.BackupAndRestore whose unreadable backup is one clear line, not a traceback.
    (double_checkpoint=True already falls back to the previous epoch's copy when Ctrl-C cut the
    last one short; this covers a backup that still cannot be loaded.)"""
    import keras

    class ClearBackupAndRestore(keras.callbacks.BackupAndRestore):
        def on_train_begin(self, logs=None):
            try:
                super().on_train_begin(logs)
            except (OSError, ValueError, KeyError) as exc:
                raise DataError(f"cannot resume from the interrupted run's backup in {self.backup_dir} "
                                f"({str(exc).splitlines()[0][:150]}); delete that folder to start over") from None

    return ClearBackupAndRestore


def training_callbacks(best_path, backup_dir=None, averaged=True):
    """The callbacks of a classifier run (the speed benchmark's too), in the order that matters:
    the backup stores the raw weights and the optimizer's state; then the averaged weights are
    swapped in for validation and the best-epoch checkpoint, and back out for the next epoch.
    averaged=False is for an optimizer that keeps no average (the benchmark's keras.io recipe)."""
    import keras

    ClearBackupAndRestore = clear_backup_and_restore()
    backup = [ClearBackupAndRestore(str(backup_dir), double_checkpoint=True)] if backup_dir else []
    swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if averaged else []
    return backup + swap + [
        keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_accuracy", mode="max",
                                        save_best_only=True, save_weights_only=True),
    ]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train the digit classifier on a digits CSV and save its weights.", allow_abbrev=False,
        formatter_class=analyze.HelpFormatter)
    parser.add_argument("--arch", default="cnn", choices=ARCHS, help="architecture")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: " + ", ".join(f"{n} for {a}" for a, n in EPOCHS.items()) + ")")
    parser.add_argument("--members", type=int, default=1,
                        help="train this many networks, seeds --seed, --seed + 1, ..., and average their probabilities")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="batch size")
    parser.add_argument("--seed", type=analyze.seed_argument, default=SEED, help="random seed")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                        help="train on randomly warped, thickened and thinned digits")
    parser.add_argument("--csv", type=Path, default=analyze.TRAIN_CSV, help="training CSV (label + 784 pixels)")
    parser.add_argument("--test-csv", default=str(analyze.TEST_CSV),
                        help="labeled CSV for the final test accuracy ('' to skip)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="where to save (default: weights/classifier_model.weights.h5 for cnn, "
                             "weights/classifier_mlp.weights.h5 for mlp)")
    parser.add_argument("--figures-dir", type=Path, default=analyze.FIGURES_DIR,
                        help="where the training-curves PNG goes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing weights even if the new ones score lower")
    parser.add_argument("--dry-run", action="store_true",
                        help=f"train {DRY_RUN_BATCHES} batches of one epoch, to test the plumbing; "
                             "it never writes into weights/ nor over weights a real run made")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.members < 1:
        parser.error("--members must be at least 1")
    if args.seed + args.members - 1 > analyze.MAX_SEED:
        parser.error(f"--seed + --members - 1 must be at most {analyze.MAX_SEED}: network i is seeded --seed + i")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    args.epochs = 1 if args.dry_run else (args.epochs or EPOCHS[args.arch])
    args.weights = args.weights or DEFAULT_WEIGHTS[args.arch]
    return args


def train_network(args, member, x_train, y_train, val_ds):
    """Train one network (seed args.seed + member); return it, its history, its seconds and its
    work file, to delete once the classifier is saved.

    Its work files live beside the target, named after it, the architecture and the member,
    so two runs for different targets or networks never resume each other's state. A member
    of an ensemble that finished is kept in .member<i>-<target> until the ensemble is saved,
    and a resumed run reads it back instead of training it again."""
    weights = Path(args.weights)
    tag = f"-member{member}" if args.members > 1 else ""
    finished = weights.with_name(f".member{member}-{weights.name}")
    settings = {"arch": args.arch, "seed": args.seed + member, "epochs": args.epochs, "csv": analyze.display_path(args.csv),
                "augment": args.augment, "batch_size": args.batch_size, "dry_run": args.dry_run}
    if args.members > 1 and analyze.record_path(finished).exists():
        record = analyze.read_record(finished) or {}
        if record.get("settings") != settings:
            raise DataError(f"{finished} is a network of another run ({record.get('settings')}); "
                            "run that command again to finish it, or delete the file to start over")
        model = analyze.load_weights_or_fail(build_classifier(args.arch), finished,
                                             f"rm {finished} && {analyze.command_line()}")
        print(f"network {member + 1} of {args.members}: finished earlier, read from {finished.name}")
        return model, None, record["wall_time_s"], finished
    analyze.set_seed(args.seed + member)
    model, train_ds = prepare_training(args.arch, x_train, y_train, args.batch_size, args.epochs, args.augment,
                                       args.seed + member, DRY_RUN_BATCHES if args.dry_run else None)
    backup_dir = weights.with_name(f".backup-{weights.name.replace('.weights.h5', '')}-{args.arch}{tag}")
    best_path = weights.with_name(f".best{tag}-{weights.name}")
    if backup_dir.exists():
        print(f"resuming the interrupted run saved in {backup_dir}")
    if args.members > 1:
        print(f"network {member + 1} of {args.members}")
    start = time.perf_counter()
    history = model.fit(train_ds, epochs=args.epochs, validation_data=val_ds,
                        callbacks=training_callbacks(best_path, backup_dir),
                        shuffle=False,  # tf.data already shuffles
                        verbose=analyze.progress_verbosity())
    wall_time = time.perf_counter() - start  # of this process; a resumed run adds to the last one's
    model.load_weights(best_path)
    if args.members == 1:
        return model, history.history, wall_time, best_path
    analyze.save_weights_atomic(model, finished)
    analyze.write_json_atomic({"settings": settings, "wall_time_s": round(wall_time, 1)}, analyze.record_path(finished))
    best_path.unlink()
    return model, history.history, wall_time, finished


def ensemble_of(arch, networks):
    """The classifier of build_classifier(arch, members=len(networks)), holding those networks."""
    ensemble = build_classifier(arch, len(networks))
    for i, network in enumerate(networks):
        trained = network.get_weights()  # the trunk's, then the softmax layer's kernel and bias
        ensemble.get_layer(f"network_{i}").set_weights(trained[:-2])
        ensemble.get_layer(f"digit_{i}").set_weights(trained[-2:])
    return ensemble


def train(args):
    """Train args.members networks and return the classifier (their average if more than one),
    the last history, the seconds, the metrics and the work files to delete once it is saved."""
    images, labels = analyze.load_digits_csv(args.csv)
    (x_train, y_train), (x_val, y_val) = analyze.split_train_validation(images, labels, seed=args.seed)
    test = analyze.load_digits_csv(args.test_csv) if args.test_csv else None
    print(f"{len(x_train):,} training / {len(x_val):,} validation digits from {analyze.display_path(args.csv)}"
          + (f"; {len(test[1]):,} test digits from {analyze.display_path(args.test_csv)}" if test else ""))
    val_ds = make_dataset(x_val, y_val, 1000, False, None, args.seed)

    networks, history, wall_time, work_files = [], None, 0.0, []
    for member in range(args.members):
        network, member_history, seconds, work_file = train_network(args, member, x_train, y_train, val_ds)
        networks.append(network)
        work_files.append(work_file)
        history, wall_time = member_history or history, wall_time + seconds
    model = networks[0] if args.members == 1 else ensemble_of(args.arch, networks)

    val_accuracy = analyze.accuracy(y_val, analyze.classify(model, x_val).argmax(1))
    result = {"val_accuracy": round(float(val_accuracy), 5)}
    if test:
        result["test_csv"] = analyze.display_path(args.test_csv)
        result["test_accuracy"] = round(analyze.accuracy(test[1], analyze.classify(model, test[0]).argmax(1)), 5)
        if args.members > 1:
            result["network_test_accuracy"] = [round(analyze.accuracy(test[1], analyze.classify(n, test[0]).argmax(1)), 5)
                                               for n in networks]
    print("validation accuracy {:.2%}".format(val_accuracy)
          + (", test accuracy {:.2%}".format(result["test_accuracy"]) if test else "")
          + (f" (each network alone: {', '.join(f'{a:.2%}' for a in result['network_test_accuracy'])})"
             if "network_test_accuracy" in result else ""))
    return model, history, wall_time, result, work_files


def better_weights_reason(old_record, result):
    """Why existing weights should stay (None if the new run may replace them): only a higher
    or equal accuracy on the same test set replaces weights."""
    old = (old_record or {}).get("metrics")
    old = old if isinstance(old, dict) else {}
    old_score, new_score = old.get("test_accuracy"), result.get("test_accuracy")
    if new_score is None:
        return "this run was not tested (--test-csv is empty), so it cannot show it is better"
    if not isinstance(old_score, (int, float)) or old.get("test_csv") != result["test_csv"]:
        return None if old_score is None else (
            f"its test accuracy was measured on {old.get('test_csv')}, this run's on {result['test_csv']}")
    if new_score < old_score:
        return f"its test accuracy {old_score:.2%} beats this run's {new_score:.2%}"
    return None


def install(model, args, history, wall_time, result, work_files):
    """Save the finished weights and their record, unless that would replace better ones."""
    weights = Path(args.weights)
    if weights.exists() and not args.overwrite:
        reason = better_weights_reason(analyze.read_record(weights), result)
        if reason:
            weights = weights.with_name(weights.name.replace(".weights.h5", ".new.weights.h5"))
            print(f"kept {args.weights}: {reason}; saved this run as {weights} (use --overwrite to replace)")
    if weights == Path(args.weights):
        analyze.keep_previous(weights)
    # An inference-only file: the same weights in a model with no optimizer attached (the
    # optimizer's moments and averages would double the file and are no use for reading digits).
    inference_model = build_classifier(args.arch, args.members)
    inference_model.set_weights(model.get_weights())
    analyze.save_weights_atomic(inference_model, weights)
    analyze.write_json_atomic({
        "builder": "train_classifier.build_classifier",
        "config": {"arch": args.arch, "members": args.members},
        "training": {"command": analyze.command_line(), "csv": analyze.display_path(args.csv), "epochs": args.epochs,
                     "batch_size": args.batch_size, "augment": args.augment, "seed": args.seed,
                     "wall_time_s": round(wall_time, 1), "hardware": analyze.hardware_summary(),
                     "date": time.strftime("%Y-%m-%d"), **({"dry_run": True} if args.dry_run else {})},
        "metrics": result,
    }, analyze.record_path(weights))
    for work_file in work_files:
        work_file.unlink(missing_ok=True)
        analyze.record_path(work_file).unlink(missing_ok=True)
    print(f"saved {analyze.display_path(weights)} and {analyze.record_path(weights).name}")
    if history:  # of the last network trained by this process
        analyze.save_training_curves(history, args.figures_dir / f"classifier_{args.arch}_training_curves.png",
                                     f"{args.arch} classifier" + (f", network {args.members}" if args.members > 1 else ""))


def main(argv=None):
    args = parse_args(argv)
    args.weights = analyze.dry_run_safe(args.weights, args.dry_run)
    args.figures_dir = analyze.dry_run_safe(args.figures_dir, args.dry_run)
    try:
        model, history, wall_time, result, work_files = train(args)
        install(model, args, history, wall_time, result, work_files)
    except DataError as exc:
        analyze.fail(exc)
    except KeyboardInterrupt:
        analyze.fail("interrupted; run the same command again to resume from the last finished "
                     "epoch (existing weights are untouched)", code=130)


if __name__ == "__main__":
    main()
