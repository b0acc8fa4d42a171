"""Shared helpers for the mnist_models scripts, and a report on every trained model.

The helpers come in sections: errors (bad input is one line and a non-zero exit), data
(digit CSVs, validated and cached), saving (atomic writes, weights records), pixels,
plots (headless), training runs (start or resume, dry runs, the resumable fit loop),
generators (the contract both generator scripts keep, precision, drawing) and metrics
(MNIST-FID and variety in the shipped classifier's features). Run it for the report, or to
serve the web page (web/) where you draw digits and watch them drawn:

    python analyze.py                            # classifier, diffusion model and GAN, if trained
    python analyze.py --samples-per-digit 500    # more generated digits per model for the metrics
    python analyze.py --serve                    # http://127.0.0.1:8000/

TensorFlow, Keras and matplotlib load only inside the functions that need them, so every
script answers --help at once.
"""

import argparse
import functools
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter (no GPU, etc.) is noise here
# TensorFlow turns its oneDNN kernels on by default only on some Intel CPUs; they run these
# networks faster on the AMD EPYC CPUs too (benchmarks/README.md), so every script asks for
# them before TensorFlow loads (TF_ENABLE_ONEDNN_OPTS=0 to compare).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# -- data ---------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent
DATASET_DIR = ROOT / "dataset"
TRAIN_CSV = DATASET_DIR / "Train.csv"
TEST_CSV = DATASET_DIR / "Test.csv"
BUNDLE = DATASET_DIR / "mnist.npz"  # the committed compact copy the CSVs are written from
BUNDLE_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
CACHE_DIR = DATASET_DIR / ".cache"
NUM_PIXELS = 28 * 28
NUM_CLASSES = 10
VALIDATION_FRACTION = 0.1
MIN_ROWS_TO_SPLIT = 20

# -- outputs ------------------------------------------------------------------------------
WEIGHTS_DIR = ROOT / "weights"
FIGURES_DIR = ROOT / "generated_digits"
CLASSIFIER_WEIGHTS = WEIGHTS_DIR / "classifier_model.weights.h5"

# -- metrics ------------------------------------------------------------------------------
METRIC_SAMPLES_PER_DIGIT = 200
FAINT_LEVELS = (1, 3)    # grey levels invisible to the eye, yet rare in MNIST (0.2% of pixels)
GREY_LEVELS = (4, 29)    # a visible tint or speckle on the paper when there are many
TINTED_PIXELS = 60       # a digit with at least this many GREY_LEVELS pixels sits on tinted paper
FEATURE_LAYER = "features"  # the classifier layer whose activations MNIST-FID compares


# == Errors: every script's answer to bad input is one line and a non-zero exit ============

class DataError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


def fail(message, code=1):
    """Print a one-line error and exit: the scripts' answer to bad input."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each flag's default, except where there is none to show (None, or a
    switch such as --from-scratch that only sets another flag) or the help already says it."""

    def _get_help_string(self, action):
        if (action.default is None or action.const is not None
                or "(default" in (action.help or "")):
            return action.help
        return super()._get_help_string(action)


# == Data: the bundled MNIST copy, digit CSVs (validated, cached), the validation split ====

def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_csv(path, images, labels):
    """Write digits in the Kaggle layout; a lookup table makes 47M numbers cheap to format."""
    as_text = np.array([str(v) for v in range(256)], dtype=object)
    header = "label," + ",".join(f"pixel{i}" for i in range(NUM_PIXELS))
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(header + "\n")
        flat = images.reshape(len(images), NUM_PIXELS)
        for start in range(0, len(flat), 5000):
            rows = as_text[flat[start:start + 5000]]
            f.write("".join(f"{label}," + ",".join(row) + "\n"
                            for label, row in zip(labels[start:start + 5000], rows)))


def ensure_dataset():
    """Write dataset/Train.csv and Test.csv from the bundled MNIST copy if they are missing.

    A CSV the user dropped in is never touched. The bundle is checked against its
    sha256 first, so a damaged clone is reported instead of silently training on junk.
    """
    missing = [p for p in (TRAIN_CSV, TEST_CSV) if not p.exists()]
    if not missing:
        return
    if not BUNDLE.exists():
        raise DataError(f"{missing[0]} is missing and so is the bundled copy {BUNDLE}; "
                        "restore it with `git checkout dataset/mnist.npz`")
    if file_sha256(BUNDLE) != BUNDLE_SHA256:
        raise DataError(f"{BUNDLE} does not match its checksum; restore it with "
                        "`git checkout dataset/mnist.npz`")
    with np.load(BUNDLE) as bundle:
        parts = {TRAIN_CSV: ("x_train", "y_train"), TEST_CSV: ("x_test", "y_test")}
        for path in missing:
            images, labels = bundle[parts[path][0]], bundle[parts[path][1]]
            print(f"writing {path.relative_to(ROOT)} ({len(images):,} digits) from the bundled "
                  "MNIST copy (first run only)")
            write_csv(path, images, labels)
            _save_cache(path, images, labels)  # we know exactly what we wrote: skip the parse


UNLABELED = np.zeros((0,), np.uint8)  # how the cache stores "this CSV has no label column"


def cache_path(csv_path):
    """Where the parsed copy of a digit CSV is cached (one per CSV path)."""
    key = hashlib.sha1(str(Path(csv_path).resolve()).encode()).hexdigest()[:12]
    return CACHE_DIR / f"{Path(csv_path).stem}-{key}.npz"


def _csv_fingerprint(csv_path):
    stat = os.stat(csv_path)
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _save_cache(csv_path, images, labels):
    try:
        with atomic_path(cache_path(csv_path)) as tmp:
            np.savez_compressed(tmp, images=images, labels=UNLABELED if labels is None else labels,
                                fingerprint=_csv_fingerprint(csv_path))
    except DataError:
        pass  # a read-only checkout still works, it just parses every time


def _load_cache(csv_path):
    target = cache_path(csv_path)
    if not target.exists():
        return None
    try:
        with np.load(target) as cached:
            if str(cached["fingerprint"]) != _csv_fingerprint(csv_path):
                return None
            labels = cached["labels"]
            return cached["images"], (None if labels.shape == UNLABELED.shape else labels)
    except Exception:  # noqa: BLE001 -- the cache is derived data: any damage means parse the CSV again
        return None


def _first_bad_cell(frame, bad_mask):
    row, col = np.argwhere(bad_mask)[0]
    return row + 2, frame.columns[col]  # +2: 1-based, after the header line


def _is_number(text):
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def parse_digits_csv(csv_path, unlabeled_ok=False):
    """Parse and validate a CSV in the Kaggle layout: label, then 784 pixels (0-255).

    A header row is expected, but a file without one is read too. With `unlabeled_ok`, a
    CSV of 784 pixel columns only (Kaggle's test.csv) is read as unlabeled digits.
    Returns (images uint8 N x 28 x 28, labels uint8 N, or None for unlabeled digits).
    Raises DataError with a one-line explanation for anything a user could get wrong.
    """
    import pandas as pd

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: file not found")
    if csv_path.stat().st_size == 0:
        raise DataError(f"{csv_path}: file is empty")
    try:
        frame = pd.read_csv(csv_path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{csv_path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv_path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot read it ({exc.strerror or exc})") from None
    if len(frame.columns) and _is_number(frame.columns[0]):  # no header: the first row is data
        frame = pd.read_csv(csv_path, header=None, low_memory=False)
        labeled = frame.shape[1] != NUM_PIXELS
        frame.columns = ["label"] * labeled + [f"pixel{i}" for i in range(frame.shape[1] - labeled)]
    labeled = frame.shape[1] != NUM_PIXELS
    if not labeled and not unlabeled_ok:
        raise DataError(f"{csv_path}: has {NUM_PIXELS} pixel columns but no label column (Kaggle's "
                        "test.csv layout); this needs labeled digits: label + 784 pixels")
    if frame.shape[1] not in (NUM_PIXELS, NUM_PIXELS + 1):
        raise DataError(f"{csv_path}: expected {NUM_PIXELS + 1} columns (label + {NUM_PIXELS} "
                        f"pixels{', or the pixels alone' if unlabeled_ok else ''}), found {frame.shape[1]}")
    if len(frame) == 0:
        raise DataError(f"{csv_path}: has a header but no rows")

    numbers = frame.apply(pd.to_numeric, errors="coerce")
    non_numeric = numbers.isna().to_numpy() & frame.notna().to_numpy()
    if non_numeric.any():
        row, col = _first_bad_cell(frame, non_numeric)
        raise DataError(f"{csv_path}: non-numeric value {frame.at[row - 2, col]!r} "
                        f"at line {row}, column {col!r}")
    if numbers.isna().any().any():
        row, col = _first_bad_cell(frame, numbers.isna().to_numpy())
        raise DataError(f"{csv_path}: empty, NaN or missing cell at line {row}, column {col!r}")

    values = numbers.to_numpy(dtype=np.float64)
    labels, pixels = (values[:, 0], values[:, 1:]) if labeled else (None, values)
    bad_labels = (labels < 0) | (labels > 9) | (labels != np.round(labels)) if labeled else np.zeros(1, bool)
    if bad_labels.any():
        row = int(np.argmax(bad_labels))
        raise DataError(f"{csv_path}: label {labels[row]:g} at line {row + 2} is not a digit 0-9")
    bad_pixels = (pixels < 0) | (pixels > 255)
    if bad_pixels.any():
        row, col = np.argwhere(bad_pixels)[0]
        raise DataError(f"{csv_path}: pixel value {pixels[row, col]:g} at line {row + 2}, "
                        f"column {frame.columns[col + labeled]!r} is outside 0-255")
    images = np.round(pixels).astype(np.uint8).reshape(-1, 28, 28)
    return images, (labels.astype(np.uint8) if labeled else None)


def load_digits_csv(csv_path=TRAIN_CSV, unlabeled_ok=False):
    """Load a digits CSV, from the cache when the file is unchanged (size and mtime).

    The default dataset CSVs are written from the bundled copy on first use. Labels are
    None for an unlabeled CSV, which only `unlabeled_ok` accepts (see parse_digits_csv).
    """
    csv_path = Path(csv_path)
    if csv_path.resolve() in (TRAIN_CSV, TEST_CSV):
        ensure_dataset()
    if csv_path.is_file():
        cached = _load_cache(csv_path)
        if cached is not None and (cached[1] is not None or unlabeled_ok):
            return cached
    images, labels = parse_digits_csv(csv_path, unlabeled_ok)
    _save_cache(csv_path, images, labels)
    return images, labels


def split_train_validation(images, labels, fraction=VALIDATION_FRACTION, seed=0):
    """Stratified split, so every digit is represented in validation as in training.

    Falls back to a plain shuffle when some digit has too few rows to stratify.
    """
    from sklearn.model_selection import train_test_split

    if len(labels) < MIN_ROWS_TO_SPLIT:
        raise DataError(f"{len(labels)} rows are too few to split into training and "
                        f"validation; need at least {MIN_ROWS_TO_SPLIT}")
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    n_val = max(int(round(fraction * len(labels))), 1)
    classes_present = int((counts > 0).sum())
    stratify = labels if counts[counts > 0].min() >= 2 and n_val >= classes_present else None
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=n_val, random_state=seed, stratify=stratify)
    return (x_train, y_train), (x_val, y_val)


def pick_per_digit(labels, per_digit, rng):
    """Indices of `per_digit` different rows of each digit, drawn with `rng`: the real digits
    the generators are compared with."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    if per_digit > counts.min():
        raise DataError(f"{per_digit:,} digits of each kind asked for, but the training data has only "
                        f"{counts.min():,} of digit {counts.argmin()}")
    return np.concatenate([rng.choice(np.flatnonzero(labels == d), per_digit, replace=False)
                           for d in range(NUM_CLASSES)])


# == Saving: one atomic write for every file, weights and the records beside them ==========

@contextmanager
def atomic_path(path):
    """A temporary name beside `path` to write to; renamed over `path` only if the block
    finishes, so an interrupted or failed write never leaves a half-written file in place of
    a good one. The name keeps the target's ending (.weights.h5, .npz), which writers check.
    A place that cannot be written (a read-only folder, a file in the way, a full disk) is a
    DataError naming the file."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        in_the_way = isinstance(exc, (FileExistsError, NotADirectoryError))
        reason = "a file stands where a folder on its path should be" if in_the_way else exc.strerror or exc
        raise DataError(f"{display_path(path)}: cannot write it ({reason})") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def save_weights_atomic(model, weights_path):
    with atomic_path(weights_path) as tmp:
        model.save_weights(tmp)


def write_json_atomic(data, path):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def save_npz(path, images, labels):
    """The generators' archive: images N x 28 x 28 uint8 (0 = background) and labels (N,)."""
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, images=np.asarray(images, np.uint8), labels=np.asarray(labels, np.uint8))


def record_path(weights_path):
    """The JSON record that travels with a weights file (builder arguments, training log)."""
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.name.replace(".weights.h5", "") + ".json")


def read_record(weights_path):
    """The record saved beside a weights file, or None if there is none (or it is unreadable)."""
    try:
        record = json.loads(record_path(weights_path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def previous_copy(weights_path, number=1):
    """Where keep_previous keeps the number-th copy of a weights file: <name>.previous.weights.h5,
    then <name>.previous-2.weights.h5 and on."""
    weights_path = Path(weights_path)
    tag = ".previous" if number == 1 else f".previous-{number}"
    return weights_path.with_name(weights_path.name.replace(".weights.h5", f"{tag}.weights.h5"))


def keep_previous(*weights_paths):
    """Before a run replaces trained weights, copy them (and the first file's record) to
    <name>.previous.weights.h5, so starting over never destroys a good model.

    The files are one model's set and are numbered alike. A copy is never overwritten: when
    one is there already, the next number is taken (.previous-2, ...), unless it holds these
    very bytes, so starting over twice in a row keeps the good weights, not those of the
    first restart's first epoch. Returns the first file's copy, or None if there was none."""
    import shutil

    existing = [Path(p) for p in weights_paths if Path(p).exists()]
    if not existing:
        return None
    number = 1
    while any(previous_copy(p, number).exists() for p in existing):
        number += 1
    if number > 1 and all(previous_copy(p, number - 1).exists()
                          and file_sha256(previous_copy(p, number - 1)) == file_sha256(p) for p in existing):
        return previous_copy(existing[0], number - 1)  # kept already
    for path in existing:
        with atomic_path(previous_copy(path, number)) as tmp:
            shutil.copy2(path, tmp)
    if record_path(existing[0]).exists():
        with atomic_path(record_path(previous_copy(existing[0], number))) as tmp:
            shutil.copy2(record_path(existing[0]), tmp)
    names = ", ".join(previous_copy(p, number).name for p in existing)
    print(f"kept a copy of the existing weights in {display_path(existing[0].parent)}: {names}")
    return previous_copy(existing[0], number)


def cpu_summary(cpuinfo=Path("/proc/cpuinfo")):
    """The CPU: cores, model, family and whether it has bfloat16 in hardware. The family tells
    apart machines of one model name ("AMD EPYC" is both a Zen 5 with AVX512-BF16, family 26,
    and an AVX2-only CPU, family 25), which differ 3-4x in speed (README, "Results")."""
    fields = {}
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:  # not Linux
        pass
    model = fields.get("model name") or platform.processor() or platform.machine()
    family = f", family {fields['cpu family']}" if fields.get("cpu family") else ""
    bfloat16 = "bfloat16 in hardware" if native_bfloat16(cpuinfo) else "no bfloat16 in hardware"
    return f"{os.cpu_count()} CPU cores ({model}{family}, {bfloat16})"


def hardware_summary():
    """What ran: the CPU (cpu_summary) and the GPUs TensorFlow used (records say so honestly)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = sorted({tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus})
    accelerator = f"{len(gpus)} GPU ({', '.join(names)})" if gpus else "no GPU"
    return f"{cpu_summary()}, {accelerator}"


def display_path(path):
    """A path as a user would type it: relative to the project when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def command_line():
    """The command that is running, for records: project paths relative, as typed in ROOT."""
    def shown(arg):
        if "=" in arg and arg.startswith("--"):
            flag, value = arg.split("=", 1)
            return f"{flag}={shown(value)}"
        return display_path(arg) if os.path.isabs(arg) else arg

    return "python " + " ".join([display_path(Path(sys.argv[0]).resolve())] + [shown(a) for a in sys.argv[1:]])


def load_weights_or_fail(model, weights_path, make_command):
    """Load weights into a freshly built model; a missing or mismatched file is one DataError
    line naming the file and the command that remakes it (Keras' per-layer warnings about a
    mismatch are silenced: the error says it once)."""
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise DataError(f"{display_path(weights_path)} not found; make it with `{make_command}`")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(weights_path)
    except Exception as exc:  # Keras raises ValueError, OSError or h5py errors for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{display_path(weights_path)} does not fit the model its record describes "
                        f"({reason[:120]}); remake it with `{make_command}`") from None
    return model


# == Pixels: uint8 digits (0 = background, as in MNIST) to and from what the models take ===

def to_model_input(images):
    """uint8 digits (N x 28 x 28) -> the float N x 28 x 28 x 1 the classifiers take (0-255)."""
    return np.asarray(images, dtype=np.float32)[..., None]


def to_signed_unit(images):
    """uint8 digits (N x 28 x 28, array or tensor) -> float N x 28 x 28 x 1 in [-1, 1], the
    generators' range."""
    from keras import ops

    return ops.cast(images, "float32")[..., None] / 127.5 - 1.0


def from_signed_unit(pixels):
    """Generator output in [-1, 1] (N x 28 x 28 x 1, or without the channel) -> uint8 digits."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 4:
        pixels = pixels[..., 0]
    return np.round((pixels + 1) * 127.5).clip(0, 255).astype(np.uint8)


# == Headless plotting =====================================================================

def pyplot():
    """matplotlib.pyplot, headless (Agg): every figure is saved to a file, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path):
    """Save and announce a figure. A figure is never the job itself, so one that cannot be
    written (a read-only folder, a full disk) is a warning, and the result is None."""
    plt = pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    except DataError as exc:
        print(f"warning: could not save a figure: {exc}; choose another folder with --figures-dir",
              file=sys.stderr)
        return None
    finally:
        plt.close(fig)
    print(f"saved {display_path(path)}")
    return path


def digit_mosaic(images, columns, gap=6):
    """Digits (N x 28 x 28) tiled row by row into one image, with `gap` pixels of paper (0)
    between them."""
    images = np.asarray(images)
    rows = max(1, int(np.ceil(len(images) / columns)))
    cell = 28 + gap
    mosaic = np.zeros((rows * cell - gap, columns * cell - gap), images.dtype)
    for i, image in enumerate(images):
        top, left = (i // columns) * cell, (i % columns) * cell
        mosaic[top:top + 28, left:left + 28] = image
    return mosaic


def save_image_grid(images, path, titles=None, columns=10, title=None, cell_inches=0.9):
    """Save digits (N x 28 x 28, 0 = background) as a grid of black-on-white pictures."""
    plt = pyplot()
    images = np.asarray(images)
    rows = max(1, int(np.ceil(len(images) / columns)))
    figsize = (columns * cell_inches, rows * cell_inches + (0.4 if title else 0))
    if titles is None:
        # One picture of all the digits: drawing one axes is ~10x faster than a hundred, the
        # difference between a 1- and a 10-second wait for a generator's ten 100-digit grids.
        fig, ax = plt.subplots(figsize=figsize)
        ax.imshow(digit_mosaic(images, columns), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        ax.axis("off")
        if title:
            ax.set_title(title, fontsize=10)
    else:
        fig, axes = plt.subplots(rows, columns, figsize=figsize, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < len(images):
                ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
                ax.set_title(titles[i], fontsize=7)
        if title:
            fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def save_training_curves(history, path, title="training"):
    """Plot every metric in a Keras-style history dict, pairing train and val_ curves."""
    plt = pyplot()
    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes.flat, names):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return save_figure(fig, path)


def save_confusion_matrix(labels, predictions, path, title="confusion matrix"):
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ConfusionMatrixDisplay.from_predictions(labels, predictions, ax=ax, cmap="Blues",
                                            colorbar=False, labels=list(range(NUM_CLASSES)))
    ax.set_title(title)
    return save_figure(fig, path)


def save_sample_rows(rows, path, row_names, title=None, column_titles=tuple(map(str, range(NUM_CLASSES)))):
    """One row per model, one column per digit: the side-by-side comparison figure."""
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), NUM_CLASSES, figsize=(NUM_CLASSES * 0.9, len(rows) * 1.0),
                             squeeze=False)
    for r, (images, name) in enumerate(zip(rows, row_names)):
        for d in range(NUM_CLASSES):
            ax = axes[r, d]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.imshow(images[d], cmap="gray_r", vmin=0, vmax=255)
            if d == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0 and column_titles:
                ax.set_title(column_titles[d], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=1.06)  # above the digit labels
    return save_figure(fig, path)


# == Training runs: seeding, where a run may write, start or resume, the resumable fit loop ===

MAX_SEED = 2 ** 32 - 1  # NumPy's and TensorFlow's seeds are unsigned 32-bit


def seed_argument(text):
    """argparse type for --seed: a whole number 0 to 2**32 - 1, or a one-line usage error."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_SEED}, got {seed}")
    return seed


def progress_verbosity():
    """Keras' verbose= for fit and Progbar: a live bar on a terminal, one line per epoch (or
    per finished bar) where output goes to a log, which a live bar would fill with redraws."""
    return 1 if sys.stdout.isatty() else 2


def set_seed(seed):
    """Seed Python, NumPy and the backend once, and say so: runs are reproducible from logs."""
    import keras

    keras.utils.set_random_seed(seed)
    print(f"seed: {seed}")


_dry_run_folder = None  # one scratch folder per dry run, for its weights and its pictures alike


def made_by_dry_run(weights_path):
    """Whether a weights file's record says a dry run made it."""
    training = (read_record(weights_path) or {}).get("training")
    return isinstance(training, dict) and training.get("dry_run") is True


def dry_run_safe(path, dry_run, weights=()):
    """Where a run may write `path` (a weights file or folder, or a figures folder). A dry run
    proves the plumbing and never writes over the shipped weights in weights/ or the pictures
    in generated_digits/, nor over weights a real run made anywhere else (`weights`: the files
    the run would replace, the first one carrying the record; a weights file `path` is its
    own). It writes to a new temporary folder instead. Every training script asks here
    before it writes."""
    global _dry_run_folder
    path = Path(path)
    if not dry_run:
        return path
    weights = [Path(w) for w in weights] or ([path] if path.name.endswith(".weights.h5") else [])
    shipped = any(path.resolve().is_relative_to(d) for d in (WEIGHTS_DIR, FIGURES_DIR))
    real_run = any(w.exists() for w in weights) and not made_by_dry_run(weights[0])
    if not (shipped or real_run):
        return path
    if _dry_run_folder is None:
        _dry_run_folder = Path(tempfile.mkdtemp(prefix="mnist-dry-run-"))
    reason = ("weights/ and generated_digits/ are never touched" if shipped
              else f"{display_path(weights[0])} was made by a real run")
    print(f"dry run: writing to {_dry_run_folder} instead of {display_path(path)} ({reason})")
    return _dry_run_folder / path.name if path.name.endswith(".weights.h5") else _dry_run_folder


def checked_config(record, default_config, weights_path, make_command):
    """The builder arguments in a weights record, checked against the builder's defaults, so a
    damaged record is one clear line instead of a traceback from deep inside Keras."""
    config = (record or {}).get("config", default_config)
    where = display_path(record_path(weights_path))
    remake = f"fix it or remake the weights with `{make_command}`"
    if not isinstance(config, dict):
        raise DataError(f"{where}: \"config\" should be an object of builder arguments; {remake}")
    unknown = sorted(set(config) - set(default_config))
    if unknown:
        raise DataError(f"{where}: unknown config key {', '.join(map(repr, unknown))} "
                        f"(known: {', '.join(default_config)}); {remake}")
    for key, value in config.items():
        expected = type(default_config[key])
        if not isinstance(value, expected) or isinstance(value, bool) != isinstance(default_config[key], bool):
            raise DataError(f"{where}: config {key!r} should be {expected.__name__}, found {value!r}; {remake}")
    return {**default_config, **config}


def build_from_record(build, config, weights_path, make_command):
    """build(config), with a config a builder rejects reported as one line."""
    try:
        return build(config)
    except (ValueError, TypeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise DataError(f"{display_path(record_path(weights_path))}: its config {config} does not build "
                        f"a model ({reason}); remake the weights with `{make_command}`") from None


def existing_record(weights_path, make_command):
    """The record of weights about to be loaded, or None if they have none (weights made before
    records were, and a mode 2 or 1 whose weights are missing, which the caller reports). A
    record that is there but unreadable, or has no "training" log to extend, is one line:
    building from defaults instead would blame the weights for a damaged record."""
    record = read_record(weights_path)
    where = display_path(record_path(weights_path))
    if record is None and record_path(weights_path).exists():
        raise DataError(f"{where} is not a readable JSON object; restore it (it says how "
                        f"{Path(weights_path).name} was built) or remake the weights with `{make_command}`")
    if record is not None and not isinstance(record.setdefault("training", {}), dict):
        raise DataError(f"{where}: \"training\" should be an object (the training log); fix it or "
                        f"remake the weights with `{make_command}`")
    return record


class Run:
    """What start_or_resume decided: the mode, the model's builder arguments, the record to
    keep extending, the weights to load (`sources`) and where checkpoints go (`targets`)."""

    def __init__(self, mode, config, record, sources, targets):
        self.mode, self.config, self.record = mode, config, record
        self.sources, self.targets = sources, targets


def start_or_resume(mode, weights_dir, weight_files, default_config, builder, make_command, dry_run=False):
    """The one place a generator script decides how a run starts (mode 0 = from scratch,
    1 = continue, 2 = generate only).

    Starting from scratch first copies existing weights to *.previous.weights.h5. A dry run
    writes to a temporary folder when the weights live in weights/ (dry_run_safe).
    `weight_files` are file names in `weights_dir`; the first one carries the record."""
    weights_dir = Path(weights_dir)
    sources = [weights_dir / name for name in weight_files]
    if mode == 1 and not sources[0].exists():
        raise DataError(f"nothing to continue: {display_path(sources[0])} does not exist; "
                        f"start a run with `{make_command}`")
    if mode == 2 and not (sources[0].is_file() or record_path(sources[0]).is_file()):
        raise DataError(f"{display_path(sources[0])} not found; make it with `{make_command}`")  # before TensorFlow loads
    if mode == 0:
        config, record = dict(default_config), None
    else:
        record = existing_record(sources[0], make_command)
        config = checked_config(record, default_config, sources[0], make_command)
    if mode == 2:
        return Run(mode, config, record, sources, [])
    if mode == 0 and not dry_run:
        keep_previous(*sources)
    target_dir = dry_run_safe(weights_dir, dry_run, sources)
    if record is None:
        record = {"builder": builder, "config": config, "training": {}}
    record["config"] = config
    if dry_run:
        record["training"]["dry_run"] = True  # what makes these weights fair game for the next dry run
    return Run(mode, config, record, sources if mode == 1 else [], [target_dir / name for name in weight_files])


def training_batches(arrays, batch_size, seed, limit=None):
    """Shuffled batches of `arrays` (uint8 digits, labels, and whatever else goes with each
    digit) for the generators' fit(); `limit` for dry runs."""
    import tensorflow as tf

    count = len(arrays[0])
    ds = (tf.data.Dataset.from_tensor_slices(tuple(arrays))
          .shuffle(count, seed=seed, reshuffle_each_iteration=True)
          .batch(batch_size, drop_remainder=count >= batch_size))
    return (ds.take(limit) if limit else ds).prefetch(tf.data.AUTOTUNE)


def update_moving_average(network, average, decay, step):
    """One step of an exponential moving average of `network`'s weights (BatchNorm statistics
    included) into `average`, a network of the same build: what the generators sample with.

    `step` counts the training steps taken so far (the optimizer's iterations). The decay
    warms up as min(decay, (1 + step) / (10 + step)): a fixed 0.999 would keep the random
    start in the average for thousands of steps and fill a new run's first progress grids
    with noise; from step ~9,000 on it is `decay` itself."""
    from keras import ops

    step = ops.cast(step, "float32")
    decay = ops.minimum(decay, (1.0 + step) / (10.0 + step))
    for weight, averaged in zip(network.weights, average.weights):
        averaged.assign(decay * averaged + (1 - decay) * weight)


def fit_resumably(model, batches, record, epochs, stop_after, run_info, checkpoint):
    """fit() from the epoch count in record["training"] up to `epochs` in total, or up to
    `stop_after` (None: no earlier stop) when that comes first; a schedule the caller spread
    over `epochs` stays spread over them, so the same command without it trains on.

    After every epoch the record gets the epoch count, the cumulative wall time and that
    epoch's logs, then checkpoint(epoch) saves whatever the caller needs. Returns False when
    there was nothing left to train.
    """
    import keras

    training = record.setdefault("training", {})
    done = training.get("epochs", 0)
    if done >= epochs:
        print(f"already trained {done} epochs; pass a larger --epochs to train more")
        return False
    if stop_after is not None and done >= stop_after:
        print(f"already trained {done} epochs; pass a larger --stop-after (or none) to train more")
        return False
    training.update(run_info, hardware=hardware_summary())
    training.setdefault("commands", []).append(command_line())
    wall_before, started = training.get("wall_time_s", 0.0), time.perf_counter()

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            training["epochs"] = epoch + 1
            training["wall_time_s"] = round(wall_before + time.perf_counter() - started, 1)
            training.setdefault("history", []).append({k: round(float(v), 5) for k, v in (logs or {}).items()})
            checkpoint(epoch + 1)

    model.fit(batches, initial_epoch=done, epochs=min(epochs, stop_after or epochs), callbacks=[Checkpoint()],
              shuffle=False, verbose=progress_verbosity())
    return True


# == Generators: the contract both generator scripts keep, their shared flags, drawing =====

GENERATOR_SCRIPTS = ("train_diffusion", "train_gan")
"""What a generator script offers the report and the web page (tests/test_generators.py checks it):

    MODEL_NAME      its name in tables and on the page ("diffusion", "GAN")
    WEIGHT_FILES    weights file names in a weights folder; the first carries the .json record
    MAKE_COMMAND    the command that trains those weights from scratch
    load_sampler(weights_dir=WEIGHTS_DIR, precision="auto") -> sampler, or a one-line
                    DataError naming MAKE_COMMAND when the weights are missing or do not fit
        sampler(labels, seed, progress=False) -> uint8 digits N x 28 x 28 (0 = background),
                    the same digits its command line draws with --digit, --num-per-digit, --seed
        sampler.with_steps(labels, seed) -> (digits, uint8 S x N x 28 x 28 pictures of the
                    S steps that drew them: the diffusion model's estimates, the GAN's output)
        sampler.weights, if it has one: the weights file whose record describes it, when that
                    is not WEIGHT_FILES[0] (the diffusion model's distilled sampler)
A sampler is not safe to call from several threads at once: callers serialize its calls.
"""

PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16(cpuinfo=Path("/proc/cpuinfo")):
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere
    bfloat16 is emulated, and slower than float32."""
    try:
        flags = set(Path(cpuinfo).read_text(errors="replace").split())
    except OSError:  # not Linux
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision="auto"):
    """"float32" or "bfloat16": what a network asked to run in `precision` computes in. "auto"
    picks bfloat16 where the CPU computes it natively and oneDNN's kernels are on (README.md,
    "Precision": faster, digits within a grey level or two of float32's)."""
    if precision not in PRECISIONS:
        raise DataError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    fast = os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0" and native_bfloat16()
    if precision == "auto":
        return "bfloat16" if fast else "float32"
    if precision == "bfloat16" and not fast:
        warn_emulated_bfloat16()
    return precision


@functools.cache  # once a process: a sampler or trainer asks on every load
def warn_emulated_bfloat16():
    print("note: bfloat16 is emulated here (no AVX512-BF16 or AMX found, or oneDNN off), so "
          "--precision bfloat16 runs slower than float32", file=sys.stderr)


def network_in_precision(network, precision="auto"):
    """`network` itself in float32, or a copy with the same weights whose layers compute in
    bfloat16 (Keras' mixed precision: the weights stay float32, so the copy trains and saves
    them as the original would). Lambda layers are shared, not copied (they hold code, no
    weights) and keep float32, which also keeps the diffusion model's noise-angle features
    exact. A bfloat16 network answers in bfloat16: callers cast what they add up."""
    if resolve_precision(precision) == "float32":
        return network
    import keras

    def in_bfloat16(layer):
        if isinstance(layer, keras.layers.Lambda) or not isinstance(layer, keras.layers.Layer):
            return layer  # code (a Lambda) or a plain operation such as `+`
        return layer.__class__.from_config({**layer.get_config(), "dtype": "mixed_bfloat16"})

    copy = keras.models.clone_model(network, clone_function=in_bfloat16)
    copy.set_weights(network.get_weights())
    return copy


def add_precision_flag(parser, trains=False):
    """--precision, as every script that draws takes it; `trains`: the help says what training computes in."""
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="number format the networks draw in: auto = bfloat16 where the CPU computes it "
                             "natively (AVX512-BF16 or AMX; faster), float32 elsewhere"
                             + (". train_diffusion.py also trains in it when it is given (auto trains in "
                                "float32); the GAN trains in float32" if trains else ""))


def generator_modules(only_trained=False, weights_dir=WEIGHTS_DIR):
    """The generator scripts as modules (see GENERATOR_SCRIPTS), optionally only those
    whose weights are present."""
    import importlib

    modules = [importlib.import_module(name) for name in GENERATOR_SCRIPTS]
    return [m for m in modules if not only_trained or (Path(weights_dir) / m.WEIGHT_FILES[0]).is_file()]


def generator_parser(description, *, no_mode, num_per_digit, epochs, batch_size, seed, figures, dry_run):
    """The flags both generator scripts take, with the same names and meanings (no_mode: what
    the script does without one); a script adds its own, then calls parse_generator_args."""
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False,
                                     formatter_class=HelpFormatter)
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--mode", type=int, choices=(0, 1, 2),
                       help=f"0 = train from scratch, 1 = continue training, 2 = generate only (default: {no_mode})")
    modes.add_argument("--from-scratch", dest="mode", action="store_const", const=0, help="same as --mode 0")
    modes.add_argument("--generate", dest="mode", action="store_const", const=2, help="same as --mode 2")
    parser.add_argument("--digit", type=int, help="generate only this digit (default: all ten)")
    parser.add_argument("--num-per-digit", "--per-digit", type=int, default=num_per_digit,
                        help="samples per digit")
    parser.add_argument("--seed", type=seed_argument, default=seed, help="random seed (same seed, same digits)")
    parser.add_argument("--epochs", type=int, default=epochs,
                        help="train until this many epochs in total (continuing counts on)")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="stop once N epochs in total are trained, on the schedule of --epochs: the "
                             "same command without it trains on (default: train all of --epochs)")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="training batch size")
    parser.add_argument("--output", type=Path, help="also save the samples to this .npz")
    parser.add_argument("--csv", type=Path, default=TRAIN_CSV, help="training CSV")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="where the weights live")
    parser.add_argument("--figures-dir", type=Path, default=FIGURES_DIR, help=f"where {figures} go")
    parser.add_argument("--dry-run", action="store_true", help=dry_run)
    add_precision_flag(parser, trains=True)
    return parser


def parse_generator_args(parser, argv=None):
    args = parser.parse_args(argv)
    if args.digit is not None and not 0 <= args.digit <= 9:
        parser.error(f"--digit must be 0-9, got {args.digit}")
    for name in ("num_per_digit", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.stop_after is not None and not 1 <= args.stop_after <= args.epochs:
        parser.error(f"--stop-after must be 1 to --epochs ({args.epochs}), got {args.stop_after}")
    if args.output is not None and args.output.suffix != ".npz":
        parser.error("--output must end in .npz")
    args.figures_dir = dry_run_safe(args.figures_dir, args.dry_run)
    return args


@contextmanager
def generator_errors():
    """A generator script's main body, with its bad input and Ctrl-C each ending in one line.
    Set `.run` on what this yields once start_or_resume has answered (and `.resume`, if the
    flags that continue it are more than --mode 1), so an interrupted training run can say
    where its last finished epoch is."""
    session = argparse.Namespace(run=None, resume="--mode 1")
    try:
        yield session
    except DataError as exc:
        fail(exc)
    except KeyboardInterrupt:
        if session.run is None or session.run.mode == 2:
            fail("interrupted", code=130)
        fail(f"interrupted; {display_path(session.run.targets[0].parent)} holds the last finished epoch "
             f"(continue with {session.resume})", code=130)


def requested_labels(digit=None, num_per_digit=1):
    """Labels to generate: num_per_digit of one digit, or of each of the ten."""
    digits = [digit] if digit is not None else range(NUM_CLASSES)
    return np.repeat(np.array(list(digits), np.int32), num_per_digit)


def save_digit_grids(images, labels, prefix, directory=FIGURES_DIR):
    """One PNG per digit (<prefix>_<d>.png) with up to 100 of its samples."""
    paths = []
    for d in np.unique(labels):
        digit_images = images[labels == d][:100]
        paths.append(save_image_grid(digit_images, Path(directory) / f"{prefix}_{d}.png",
                                     columns=min(10, len(digit_images)), title=f"digit {d}"))
    return paths


def draw_and_save(draw, args, prefix):
    """Run a generator's draw(labels) -> uint8 digits for the digits its flags ask for
    (--digit, --num-per-digit), report its speed, save grids (and --output)."""
    labels, figures_dir, output = requested_labels(args.digit, args.num_per_digit), args.figures_dir, args.output
    start = time.perf_counter()
    images = draw(labels)
    seconds = time.perf_counter() - start
    print(f"generated {len(images):,} digits in {seconds:.2f} s ({len(images) / seconds:,.0f} digits/s, "
          f"{resolve_precision(args.precision)})")
    save_digit_grids(images, labels, prefix, figures_dir)
    if output:
        save_npz(output, images, labels)
        print(f"saved {display_path(output)} ({len(images)} images and labels)")
    return images


# == Metrics ===============================================================================

def accuracy(labels, predictions):
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, predictions))


def classify(classifier, images, batch_size=1000):
    """Class probabilities for uint8 digits."""
    return classifier.predict(to_model_input(images), batch_size=batch_size, verbose=0)


def with_features(classifier):
    """The classifier with a second output, its FEATURE_LAYER activations (an ensemble's
    members' features side by side), so one pass gives both: see probabilities_and_features."""
    import keras

    return keras.Model(classifier.inputs, [classifier.output, classifier.get_layer(FEATURE_LAYER).output],
                       name=classifier.name)


def probabilities_and_features(model, images, batch_size=1000):
    """Class probabilities and (float64) features for uint8 digits, in one pass of
    `model`, a with_features(classifier)."""
    probabilities, feats = model.predict(to_model_input(images), batch_size=batch_size, verbose=0)
    return probabilities, feats.astype(np.float64)


def frechet_distance(feats_a, feats_b):
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

    tr(sqrt(C_a C_b)) is computed from the eigenvalues of sqrt(C_a) C_b sqrt(C_a), which is
    symmetric, so NumPy's eigh suffices and no complex-valued matrix square root is needed.
    """
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    cov_a, cov_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
    vals, vecs = np.linalg.eigh(cov_a)
    sqrt_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    cross = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def within_digit_variety(feats, labels):
    """Mean distance of each sample's features from its digit's mean, averaged over digits.

    Mode collapse shows up as a value well below the same measure on real digits."""
    spreads = [np.linalg.norm(feats[labels == d] - feats[labels == d].mean(0), axis=1).mean()
               for d in range(NUM_CLASSES) if (labels == d).sum() > 1]
    return float(np.mean(spreads))


def paper_cleanliness(images):
    """How clean the paper is, as in MNIST: the shares of pixels that are exactly 0, faint
    (1-3) and grey (4-29), and the share of digits on tinted paper (>= 60 grey pixels)."""
    images = np.asarray(images)
    grey = (images >= GREY_LEVELS[0]) & (images <= GREY_LEVELS[1])
    return {"zero_pixels": float((images == 0).mean()),
            "faint_pixels": float(((images >= FAINT_LEVELS[0]) & (images <= FAINT_LEVELS[1])).mean()),
            "grey_pixels": float(grey.mean()),
            "tinted_digits": float((grey.reshape(len(images), -1).sum(1) >= TINTED_PIXELS).mean())}


class DigitMetrics:
    """Everything needed to score generated digits: the classifier with its features
    (`model`, a with_features(classifier)), its features of the 10k test set (`reference`,
    the MNIST-FID reference: the report has them from the pass that measured its test
    accuracy) and held-out real training digits (the real-vs-real floor at the same sample
    size)."""

    def __init__(self, model, reference, train_images, train_labels, seed=0):
        self.model, self.reference = model, reference
        self._train_images, self._train_labels = train_images, train_labels
        self._rng = np.random.default_rng(seed)

    def real_floor(self, per_digit):
        """MNIST-FID and variety of real training digits (same per-digit count) vs the test set."""
        picks = pick_per_digit(self._train_labels, per_digit, self._rng)
        _, feats = probabilities_and_features(self.model, self._train_images[picks])
        return {"fid": frechet_distance(feats, self.reference),
                "variety": within_digit_variety(feats, self._train_labels[picks]),
                **paper_cleanliness(self._train_images[picks])}

    def score(self, images, labels):
        """Requested-digit accuracy, MNIST-FID, within-digit variety and the cleanliness of the
        paper (paper_cleanliness) of generated digits."""
        probabilities, feats = probabilities_and_features(self.model, images)
        return {"requested_digit_accuracy": accuracy(labels, probabilities.argmax(1)),
                "fid": frechet_distance(feats, self.reference),
                "variety": within_digit_variety(feats, labels),
                **paper_cleanliness(images)}


# == Report: `python analyze.py` ===========================================================

def _report_classifiers(classifier, shipped_probabilities, test_images, test_labels, figures_dir):
    """Test accuracy of every classifier in weights/; confusion matrix of the shipped one
    (`classifier`, whose probabilities for the test digits are already known)."""
    from train_classifier import load_classifier

    for weights in sorted(WEIGHTS_DIR.glob("classifier_*.weights.h5")):
        if "." in weights.name.removesuffix(".weights.h5"):
            continue  # a kept copy (.previous, .previous-2) or a run that did not win (.new)
        if weights == CLASSIFIER_WEIGHTS:
            model, probabilities = classifier, shipped_probabilities
        else:
            model = load_classifier(weights)
            probabilities = classify(model, test_images)
        predicted = probabilities.argmax(1)
        trained = (read_record(weights) or {}).get("training", {})
        print(f"classifier ({model.name.removeprefix('classifier_')}, {weights.name}): test accuracy "
              f"{accuracy(test_labels, predicted):.2%} on {len(test_labels):,} digits"
              + (f"; trained {trained.get('epochs')} epochs in {trained.get('wall_time_s', 0) / 60:.1f} min"
                 if trained else ""))
        if weights == CLASSIFIER_WEIGHTS:
            save_confusion_matrix(test_labels, predicted, Path(figures_dir) / "classifier_confusion_test.png",
                                  "classifier on the MNIST test set")


PAPER_KEYS = ("zero_pixels", "faint_pixels", "grey_pixels", "tinted_digits")


def how_measured(module, precision="auto", draw=None):
    """What a generator's record keeps beside figures measured on it: the number format and
    sampler settings it drew with (the sampler `draw`'s defaults, or else its module's
    SAMPLER_DEFAULTS, if it has either), the command, the machine and the date."""
    settings = getattr(draw, "defaults", None) or getattr(module, "SAMPLER_DEFAULTS", None)
    sampler = {"sampler": settings} if settings else {}
    return {"precision": resolve_precision(precision), **sampler, "measured_by": command_line(),
            "hardware": hardware_summary(), "date": time.strftime("%Y-%m-%d")}


def report_generators(generators, metrics, samples_per_digit, seed, figures_dir=FIGURES_DIR,
                      save_metrics=False, precision="auto"):
    """Score generator modules (see GENERATOR_SCRIPTS) on the same footing; print one table,
    save one figure.

    With save_metrics, each generator's weights record gets what was measured, and how."""
    floor = metrics.real_floor(samples_per_digit)
    rows, names, table = [], [], []
    for module in generators:
        draw = module.load_sampler(precision=precision)
        name, weights = module.MODEL_NAME, getattr(draw, "weights", WEIGHTS_DIR / module.WEIGHT_FILES[0])
        # Warm-up: graph tracing is not generation speed. Two batch sizes, because the GAN's
        # sampler (reduce_retracing) traces once for the first size and once more, for any
        # size, at the second; the diffusion sampler's networks trace once for any size.
        for per_digit in (1, 2):
            draw(requested_labels(None, per_digit), seed)
        labels = requested_labels(None, samples_per_digit)
        print(f"{name}: drawing {len(labels):,} digits ...", flush=True)
        start = time.perf_counter()
        images = draw(labels, seed, progress=True)
        seconds = time.perf_counter() - start
        score = metrics.score(images, labels)
        record = read_record(weights) or {}
        training = record.get("training", {})
        table.append({"model": name, **score, "fid_floor": floor["fid"], "real_variety": floor["variety"],
                      "digits_per_s": len(images) / seconds, "epochs": training.get("epochs"),
                      "train_minutes": training.get("wall_time_s", float("nan")) / 60})
        rows.append([images[labels == d][0] for d in range(NUM_CLASSES)])
        names.append(name)
        if save_metrics and record:
            # Merged, so what other commands measured and stored (benchmarks/cas.py) stays.
            record["metrics"] = {**record.get("metrics", {}), **{k: round(float(v), 5) for k, v in score.items()},
                                 "fid_real_floor": round(floor["fid"], 5), "real_variety": round(floor["variety"], 5),
                                 "real_paper": {k: round(floor[k], 5) for k in PAPER_KEYS},
                                 "digits_per_s": round(len(images) / seconds, 1), "samples": len(images),
                                 **how_measured(module, precision, draw)}
            write_json_atomic(record, record_path(weights))
    n = samples_per_digit * NUM_CLASSES
    print(f"\ngenerators: {n:,} digits each ({samples_per_digit} per digit), seed {seed}")
    print(f"real digits at that size: MNIST-FID {floor['fid']:.2f} (the floor), variety {floor['variety']:.2f}")
    print(f"| model | requested-digit accuracy | MNIST-FID | × floor | variety (real {floor['variety']:.2f}) "
          f"| digits/s | training |")
    print("|---|---|---|---|---|---|---|")
    for row in table:
        print(f"| {row['model']} | {row['requested_digit_accuracy']:.2%} | {row['fid']:.2f} | "
              f"{row['fid'] / row['fid_floor']:.2f} | {row['variety']:.2f} | {row['digits_per_s']:,.0f} | "
              f"{row['epochs']} epochs, {row['train_minutes']:.0f} min |")
    print("\nthe paper around the digits (shares of all pixels, and of digits on tinted paper):")
    print(f"| digits | exactly 0 | faint ({FAINT_LEVELS[0]}-{FAINT_LEVELS[1]}) | grey ({GREY_LEVELS[0]}-{GREY_LEVELS[1]}) "
          f"| tinted (>= {TINTED_PIXELS} grey pixels) |")
    print("|---|---|---|---|---|")
    for name, row in [("real (training digits)", floor)] + [(r["model"], r) for r in table]:
        print(f"| {name} | " + " | ".join(f"{row[k]:.1%}" for k in PAPER_KEYS) + " |")
    save_sample_rows(rows, Path(figures_dir) / "model_comparison.png", names,
                     "the first sample of each digit from each model")
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--samples-per-digit", "--per-digit", type=int, default=METRIC_SAMPLES_PER_DIGIT,
                        help="generated digits per class for the generator metrics")
    parser.add_argument("--seed", type=seed_argument, default=0, help="random seed")
    parser.add_argument("--figures-dir", type=Path, default=FIGURES_DIR, help="where the PNG figures go")
    parser.add_argument("--json", action="store_true", help="end with the generator table as one JSON line")
    parser.add_argument("--save-metrics", action="store_true",
                        help="write the generator metrics into their weights records")
    add_precision_flag(parser)
    parser.add_argument("--serve", action="store_true",
                        help="instead of the report, serve the web page (web/) until Ctrl-C")
    parser.add_argument("--host", default="127.0.0.1",
                        help="with --serve: the address to listen on (any other than 127.0.0.1 lets "
                             "other machines in)")
    parser.add_argument("--port", type=int, default=8000, help="with --serve: the port")
    parser.add_argument("--teacher", action="store_true",
                        help="with --serve: draw the diffusion model's digits with its full 17-pass sampler "
                             "instead of the distilled one (weights/distilled)")
    args = parser.parse_args()
    if args.samples_per_digit < 2:
        parser.error("--samples-per-digit must be at least 2")
    if args.teacher and not args.serve:
        parser.error("--teacher goes with --serve (the report scores the sampler that draws by default)")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0-65535, got {args.port}")

    try:
        if args.serve:
            from web import server  # the page and its HTTP API live in web/

            server.serve(args.host, args.port, precision=args.precision, teacher=args.teacher)
            return
        from train_classifier import load_classifier

        set_seed(args.seed)
        test_images, test_labels = load_digits_csv(TEST_CSV)
        classifier = load_classifier(CLASSIFIER_WEIGHTS)
        # One pass over the test digits: test accuracy, and the MNIST-FID reference features.
        shipped = with_features(classifier)
        test_probabilities, test_features = probabilities_and_features(shipped, test_images)
        _report_classifiers(classifier, test_probabilities, test_images, test_labels, args.figures_dir)

        generators = generator_modules(only_trained=True)
        if not generators:
            print("no generator weights in weights/ yet (train_diffusion.py, train_gan.py)")
            return
        train_images, train_labels = load_digits_csv(TRAIN_CSV)
        metrics = DigitMetrics(shipped, test_features, train_images, train_labels, args.seed)
        table = report_generators(generators, metrics, args.samples_per_digit, args.seed, args.figures_dir,
                                  args.save_metrics, args.precision)
        if args.json:
            print(json.dumps(table))
    except DataError as exc:
        fail(exc)


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: the scripts and web/ import `analyze`,
    # and its DataError must be the one main() catches.
    import analyze

    analyze.main()
