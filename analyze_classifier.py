"""Evaluate the trained classifier, or recognize your own pictures of digits.

    python analyze_classifier.py                     # MNIST test set: accuracy, report, figures
    python analyze_classifier.py --csv my.csv        # any labeled CSV in the Train.csv layout
    python analyze_classifier.py --csv test.csv --predictions submission.csv   # Kaggle's test.csv
    python analyze_classifier.py --image a.png b.jpg # your own digit pictures
    python analyze_classifier.py --json ...          # last line: one JSON object with the results

It loads the shipped weights (weights/classifier_model.weights.h5) into the architecture
from train_classifier.py; nothing is retrained. Pictures may be any size, colour or grey,
dark ink on light paper or light on dark, anywhere in the frame: they are converted the
way MNIST was made (ink cropped, fitted into 20x20 keeping its aspect ratio, centred by
centre of mass in 28x28).

TensorFlow loads inside the functions that need it, so that --help and argument errors answer
at once (train_classifier.py, imported below, does the same).
"""

import argparse
import json
from pathlib import Path

import numpy as np

import analyze
from analyze import DataError
from train_classifier import load_classifier  # the one home of the architecture

# -- data ---------------------------------------------------------------------------------
TEST_CSV = analyze.TEST_CSV
WEIGHTS = analyze.CLASSIFIER_WEIGHTS

# -- picture conversion (MNIST's recipe) ---------------------------------------------------
DIGIT_BOX = 20           # the ink is scaled to fit this square...
CANVAS = 28              # ...then centred by mass on this one,
MNIST_CENTRE = 14.0      # where MNIST's own digits have it (mean over the 60k: 14.00, 14.01)
INK_THRESHOLD = 0.25     # fraction of the darkest ink below which a pixel counts as paper
MIN_INK_CONTRAST = 24    # grey levels between paper and ink below which a picture is blank
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # red, green, blue in grey (ITU-R 601)
ROWS_AT_ONCE = 256

# -- outputs ------------------------------------------------------------------------------
MAX_GALLERY = 50


def read_grey_image(path):
    """Decode a PNG/JPEG/GIF/BMP file as float grey levels (0 = black, 255 = white)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return decode_grey_image(data, str(path))


def decode_grey_image(data, name="image"):
    """Decode the bytes of a PNG/JPEG/GIF/BMP picture as float grey levels (0 = black)."""
    import tensorflow as tf

    try:
        pixels = tf.io.decode_image(data, expand_animations=False).numpy()  # uint8 H x W x channels
    except (tf.errors.InvalidArgumentError, ValueError):
        raise DataError(f"{name}: not a readable PNG, JPEG, GIF or BMP image") from None
    if pixels.size == 0:
        raise DataError(f"{name}: image is empty")
    # Float copies of a few rows at a time: of a whole phone photo they would be gigabytes.
    grey = np.empty(pixels.shape[:2], np.float32)
    for top in range(0, len(grey), ROWS_AT_ONCE):
        rows = pixels[top:top + ROWS_AT_ONCE].astype(np.float32)
        if rows.shape[-1] in (2, 4):  # transparent pixels are paper: composite onto white
            alpha = rows[..., -1:] / 255
            rows = rows[..., :-1] * alpha + 255 * (1 - alpha)
        grey[top:top + ROWS_AT_ONCE] = rows @ GREY_WEIGHTS if rows.shape[-1] == 3 else rows[..., 0]
    return grey


def to_mnist_digit(grey, name="image"):
    """Turn a grey picture of one digit into a 28x28 uint8 MNIST-style digit (ink bright)."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    paper = float(np.median(border))
    # The border tells which way round the picture is: mostly light means dark ink.
    ink = (paper - grey) if paper >= 128 else (grey - paper)
    np.clip(ink, 0, None, out=ink)
    if ink.max() < MIN_INK_CONTRAST:
        raise DataError(f"{name}: no digit found (the picture is blank)")
    ink /= ink.max()
    ink[ink < INK_THRESHOLD] = 0  # paper grain and shadows would otherwise stretch the box
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    import tensorflow as tf

    scale = DIGIT_BOX / max(crop.shape)
    size = (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
    fitted = tf.image.resize(crop[..., None], size, method="area" if scale < 1 else "bilinear",
                             antialias=True).numpy()[..., 0]
    fitted = np.clip(fitted / fitted.max(), 0, 1)

    total = fitted.sum()
    centre_y = (fitted.sum(1) * np.arange(size[0])).sum() / total
    centre_x = (fitted.sum(0) * np.arange(size[1])).sum() / total
    top = int(np.clip(round(MNIST_CENTRE - centre_y), 0, CANVAS - size[0]))
    left = int(np.clip(round(MNIST_CENTRE - centre_x), 0, CANVAS - size[1]))
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    canvas[top:top + size[0], left:left + size[1]] = fitted
    return np.round(canvas * 255).astype(np.uint8)


def load_picture(path):
    return to_mnist_digit(read_grey_image(path), str(path))


def evaluate_csv(classifier, csv_path, as_json, figures_dir, predictions_path=None):
    """Score a labeled CSV (report, confusion matrix, gallery of mistakes), or summarize the
    predictions for an unlabeled one (Kaggle's test.csv layout: pixels only)."""
    images, labels = analyze.load_digits_csv(csv_path, unlabeled_ok=True)
    probabilities = analyze.classify(classifier, images)
    predicted = probabilities.argmax(1)
    if predictions_path:
        save_predictions(predicted, predictions_path)
    if labels is None:
        counts = np.bincount(predicted, minlength=analyze.NUM_CLASSES)
        print(f"{len(images):,} unlabeled digits in {analyze.display_path(csv_path)}; read as: "
              + ", ".join(f"{d}: {n:,}" for d, n in enumerate(counts))
              + f"; mean confidence {probabilities.max(1).mean():.1%}")
        if not predictions_path:
            print("(add --predictions FILE.csv to save them in Kaggle's submission layout)")
        if as_json:
            print(json.dumps({"n": int(len(images)), "counts": counts.tolist(), "csv": str(csv_path)}))
        return
    report_accuracy(images, labels, probabilities, csv_path, as_json, figures_dir)


def save_predictions(predicted, path):
    """Kaggle's "Digit Recognizer" submission layout: ImageId (from 1), Label."""
    import pandas as pd

    frame = pd.DataFrame({"ImageId": np.arange(1, len(predicted) + 1), "Label": predicted})
    with analyze.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    print(f"saved {analyze.display_path(path)} ({len(predicted):,} predictions: ImageId,Label)")


def report_accuracy(images, labels, probabilities, csv_path, as_json, figures_dir):
    from sklearn.metrics import classification_report

    predicted = probabilities.argmax(1)
    acc = analyze.accuracy(labels, predicted)
    print(f"accuracy on {analyze.display_path(csv_path)}: {acc:.2%} ({int((predicted == labels).sum()):,} of {len(labels):,})")
    print(classification_report(labels, predicted, labels=list(range(analyze.NUM_CLASSES)),
                                digits=4, zero_division=0))
    stem = Path(csv_path).stem.lower()
    analyze.save_confusion_matrix(labels, predicted, Path(figures_dir) / f"classifier_confusion_{stem}.png",
                                  f"classifier on {Path(csv_path).name}")
    wrong = np.flatnonzero(predicted != labels)
    # The most confident mistakes first: they show what the model really gets wrong.
    wrong = wrong[np.argsort(-probabilities[wrong].max(1))][:MAX_GALLERY]
    if len(wrong):
        analyze.save_image_grid(images[wrong], Path(figures_dir) / f"classifier_misclassified_{stem}.png",
                                titles=[f"true {labels[i]} → {predicted[i]}" for i in wrong],
                                title=f"{len(wrong)} misclassified digits (most confident first)")
    if as_json:
        print(json.dumps({"accuracy": acc, "n": int(len(labels)), "csv": str(csv_path)}))


def recognize_pictures(classifier, paths, as_json, figures_dir):
    digits = np.stack([load_picture(p) for p in paths])  # every file checked before any output
    probabilities = analyze.classify(classifier, digits)
    predictions = []
    for path, p in zip(paths, probabilities):
        digit = int(p.argmax())
        predictions.append({"file": str(path), "digit": digit, "confidence": round(float(p[digit]), 4)})
        print(f"{path}: {digit} (confidence {p[digit]:.1%})")
    analyze.save_image_grid(digits, Path(figures_dir) / "recognized_pictures.png",
                            titles=[f"{Path(q['file']).stem[:16]}\n→ {q['digit']}" for q in predictions],
                            columns=min(len(digits), 5), cell_inches=1.6,
                            title="your pictures as the classifier sees them")
    if as_json:
        print(json.dumps({"predictions": predictions}))


def warn_if_trained_on_mnist(weights):
    """Kaggle's test digits are MNIST digits, most of them from MNIST's training set: weights
    trained on dataset/Train.csv have seen them, so their score there overstates them."""
    trained_on = ((analyze.read_record(weights) or {}).get("training") or {}).get("csv")
    if trained_on == analyze.display_path(analyze.TRAIN_CSV):
        print(f"note: {analyze.display_path(weights)} was trained on {trained_on}, MNIST's 60,000 training digits, "
              "from which most of Kaggle's test digits come: a score on them overstates it (README.md, "
              "\"Kaggle's Digit Recognizer\", gives the clean recipe)")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate the digit classifier or recognize pictures.",
                                     allow_abbrev=False, formatter_class=analyze.HelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--csv", type=Path, default=TEST_CSV,
                        help="CSV to evaluate: label + 784 pixels, or the 784 pixels alone (Kaggle's test.csv)")
    source.add_argument("--image", type=Path, nargs="+", metavar="FILE",
                        help="pictures of single digits to recognize (PNG, JPEG, GIF, BMP)")
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="classifier weights")
    parser.add_argument("--figures-dir", type=Path, default=analyze.FIGURES_DIR,
                        help="where the PNG figures go")
    parser.add_argument("--predictions", type=Path, metavar="FILE.csv",
                        help="with --csv: also write the predicted digits as ImageId,Label (Kaggle's layout)")
    parser.add_argument("--json", action="store_true",
                        help="end the output with one line of JSON holding the results")
    args = parser.parse_args(argv)
    if args.predictions and args.image:
        parser.error("--predictions goes with --csv, not --image")
    if args.predictions and args.predictions.suffix.lower() != ".csv":
        parser.error("--predictions must end in .csv")

    try:
        if args.image:
            # Check the pictures before paying for TensorFlow's model start-up.
            for path in args.image:
                if not Path(path).is_file():
                    raise DataError(f"{path}: file not found")
        classifier = load_classifier(args.weights)
        if args.predictions:
            warn_if_trained_on_mnist(args.weights)
        if args.image:
            recognize_pictures(classifier, args.image, args.json, args.figures_dir)
        else:
            evaluate_csv(classifier, args.csv, args.json, args.figures_dir, args.predictions)
    except DataError as exc:
        analyze.fail(exc)


if __name__ == "__main__":
    main()
