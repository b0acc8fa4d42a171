"""How fast the default classifier recipe learns, against the keras.io MNIST convnet.

    python benchmarks/classifier_speed.py            # both recipes in full, one after the other
    python benchmarks/classifier_speed.py --quick    # a smoke test: 1 epoch each on 3,000 digits

Trains, in this one process and one after the other,

- "ours": the default `python train_classifier.py` recipe (train_classifier.build_classifier,
  make_dataset with augmentation, compile_classifier's optimizer and schedule, its epochs and
  batch size, and training_callbacks: validation and a best-epoch checkpoint every epoch with
  the averaged weights, as the script does; the test accuracy is measured on those too);
- "keras.io": the keras.io `mnist_convnet` example, written here from its description: two
  3x3 convolutions of 32 and 64 filters, each followed by 2x2 max-pooling, flatten, dropout
  0.5, dense softmax; Adam (its default rate), batch 128, 15 epochs, categorical
  crossentropy, no augmentation; validation on the same held-out digits every epoch (the
  example's validation_split);

both on the same training split of dataset/Train.csv (train_classifier's stratified 90%).
After every epoch a callback stops the training clock, measures accuracy on the 10,000 test
digits (dataset/Test.csv), and starts the clock again, so the seconds are training seconds
only (fit's own validation included). It prints, for each recipe, the training seconds to
reach 99.0%, 99.2% and 99.5% test accuracy ("not reached" otherwise) and the final accuracy,
and saves the curves as generated_digits/classifier_speed.png. Time it on a quiet machine.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402  (before Keras: it chooses TensorFlow's CPU kernels)
import train_classifier  # noqa: E402

THRESHOLDS = (0.990, 0.992, 0.995)
KERAS_IO = {"epochs": 15, "batch_size": 128}
QUICK = {"train_digits": 3000, "test_digits": 2000, "epochs": 1}
SEED = 0


def keras_io_convnet():
    """keras.io/examples/vision/mnist_convnet, taking the same 0-255 pixels as ours."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Rescaling(1 / 255),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(analyze.NUM_CLASSES, activation="softmax"),
    ], name="keras_io_mnist_convnet")


def test_clock(test_images, test_labels):
    """A callback recording (training seconds, test accuracy) after every epoch; the time
    spent measuring the test accuracy is kept off the clock."""
    import keras

    class TestClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.points, self.paused, self.start = [], 0.0, time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            stopped = time.perf_counter()
            predicted = analyze.classify(self.model, test_images).argmax(1)
            self.points.append((stopped - self.start - self.paused,
                                analyze.accuracy(test_labels, predicted)))
            self.paused += time.perf_counter() - stopped
            print(f"  {self.model.name}: epoch {epoch + 1}, {self.points[-1][0]:.1f} s of training, "
                  f"test accuracy {self.points[-1][1]:.2%}", flush=True)

    return TestClock()


def run_recipe(name, data, epochs, work_dir, seed):
    """Train one recipe; returns its TestClock points [(seconds, accuracy), ...]."""
    import keras

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)  # each recipe starts from the same seed, whatever ran before it
    if name == "ours":
        batch_size, arch = train_classifier.BATCH_SIZE, "cnn"
        model, train_ds = train_classifier.prepare_training(arch, x_train, y_train, batch_size, epochs, True, seed)
    else:
        batch_size = KERAS_IO["batch_size"]
        model = keras_io_convnet()
        train_ds = train_classifier.make_dataset(x_train, y_train, batch_size, True, None, seed)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    val_ds = train_classifier.make_dataset(x_val, y_val, 1000, False, None, seed)
    clock = test_clock(x_test, y_test)
    # keras.io's recipe keeps the best epoch too (for the same per-epoch cost), without the
    # weight averaging, which its plain Adam does not keep.
    callbacks = train_classifier.training_callbacks(Path(work_dir) / f"best-{name}.weights.h5",
                                                    averaged=name == "ours")
    print(f"{name}: {model.count_params():,} parameters, batch {batch_size}, {epochs} epochs")
    model.fit(train_ds, epochs=epochs, validation_data=val_ds, callbacks=[*callbacks, clock],
              shuffle=False, verbose=0)  # tf.data already shuffles
    return clock.points


def seconds_to(points, threshold):
    return next((seconds for seconds, acc in points if acc >= threshold), None)


def summarize(results):
    """Print the table; returns a JSON-able summary."""
    header = ["recipe", "epochs", "s/epoch", "final test acc"] + [f"s to {t:.1%}" for t in THRESHOLDS]
    rows, summary = [], {}
    for name, points in results.items():
        reached = [seconds_to(points, t) for t in THRESHOLDS]
        total = points[-1][0]
        summary[name] = {"epochs": len(points), "train_seconds": round(total, 1),
                         "final_accuracy": round(points[-1][1], 5),
                         "seconds_to": {f"{t:.3f}": (None if s is None else round(s, 1))
                                        for t, s in zip(THRESHOLDS, reached)},
                         "curve": [[round(s, 1), round(a, 5)] for s, a in points]}
        rows.append([name, str(len(points)), f"{total / len(points):.1f}", f"{points[-1][1]:.2%}"]
                    + ["not reached" if s is None else f"{s:.0f}" for s in reached])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths]] + rows:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
    ours, theirs = (summary.get(k, {}).get("seconds_to", {}).get("0.992") for k in ("ours", "keras.io"))
    if ours is not None and theirs is not None:
        summary["ratio_to_99.2"] = round(ours / theirs, 3)
        print(f"to 99.2%: ours {ours:.0f} s, keras.io {theirs:.0f} s: {ours / theirs:.2f} of keras.io's time")
    else:
        summary["ratio_to_99.2"] = None
        print(f"to 99.2%: ours {'not reached' if ours is None else f'{ours:.0f} s'}, "
              f"keras.io {'not reached' if theirs is None else f'{theirs:.0f} s'}")
    return summary


def save_curves(results, path, title):
    plt = analyze.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, points in results.items():
        seconds, accs = zip(*points)
        ax.plot(seconds, [100 * a for a in accs], marker="o", markersize=3, label=name)
    for t in THRESHOLDS:
        ax.axhline(100 * t, color="grey", linewidth=0.6, linestyle=":")
    low = min(a for points in results.values() for _, a in points)
    ax.set_ylim(max(100 * low - 0.2, 97.0), 100.0)
    ax.set_xlabel("training seconds (test evaluation excluded)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    return analyze.save_figure(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=analyze.HelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {QUICK['epochs']} epoch each on {QUICK['train_digits']:,} "
                             f"training and {QUICK['test_digits']:,} test digits")
    parser.add_argument("--recipes", nargs="+", default=["ours", "keras.io"], choices=["ours", "keras.io"],
                        help="which recipes to train, in this order")
    parser.add_argument("--csv", type=Path, default=analyze.TRAIN_CSV, help="training CSV")
    parser.add_argument("--test-csv", type=Path, default=analyze.TEST_CSV, help="labeled test CSV")
    parser.add_argument("--seed", type=analyze.seed_argument, default=SEED, help="random seed (the same for both)")
    parser.add_argument("--figures-dir", type=Path, default=analyze.FIGURES_DIR,
                        help="where classifier_speed.png goes")
    args = parser.parse_args(argv)
    try:
        images, labels = analyze.load_digits_csv(args.csv)
        test_images, test_labels = analyze.load_digits_csv(args.test_csv)
        train, val = analyze.split_train_validation(images, labels, seed=train_classifier.SEED)
        if args.quick:
            train = (train[0][:QUICK["train_digits"]], train[1][:QUICK["train_digits"]])
            test_images, test_labels = test_images[:QUICK["test_digits"]], test_labels[:QUICK["test_digits"]]
        data = (train, val, (test_images, test_labels))
        print(f"{len(train[1]):,} training / {len(val[1]):,} validation / {len(test_labels):,} test digits; "
              f"{analyze.hardware_summary()}; seed {args.seed}, for each recipe")
        epochs = {"ours": train_classifier.EPOCHS["cnn"], "keras.io": KERAS_IO["epochs"]}
        results = {}
        with tempfile.TemporaryDirectory(prefix="classifier-speed-") as work_dir:
            for name in args.recipes:
                results[name] = run_recipe(name, data, QUICK["epochs"] if args.quick else epochs[name],
                                           work_dir, args.seed)
    except analyze.DataError as exc:
        analyze.fail(exc)
    summary = summarize(results)
    save_curves(results, args.figures_dir / "classifier_speed.png",
                f"test accuracy against training time ({analyze.hardware_summary()})"
                + (" [--quick]" if args.quick else ""))
    print(json.dumps({"quick": args.quick, **summary}))


if __name__ == "__main__":
    main()
