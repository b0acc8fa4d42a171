"""How well classifier weights read digits that do not look like MNIST's test set.

    python benchmarks/classifier_robustness.py                      # the shipped weights
    python benchmarks/classifier_robustness.py --previous           # and the 99.67% network of b545168
    python benchmarks/classifier_robustness.py --weights a.weights.h5 --weights b.weights.h5

Beside the MNIST test accuracy it scores three fixed sets (the same digits on every run and
every commit, so the figures compare across them):
  warped     the 10,000 MNIST test digits, each turned up to 15 degrees, shifted up to 4 px,
             scaled 0.8-1.2 and sheared, and a third thickened, a third thinned;
  drawn      1,000 pen paths, 100 per digit in a few styles, drawn at random sizes and slants
             with the page's round 19 px pen on its white 280x280 canvas, saved as PNG and read
             through the page's own conversion (analyze_classifier.decode_grey_image and
             to_mnist_digit, as web/server.py does);
  uci        scikit-learn's 1,797 digits (UCI optical recognition: 43 other writers, 8x8
             blocks of a 32x32 scan), enlarged and brought to MNIST's format by that same
             conversion.
"""

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import analyze  # noqa: E402
import analyze_classifier  # noqa: E402
import train_classifier  # noqa: E402

SEED = 2024
PREVIOUS = ("b545168", "wide")  # the 99.67% network; its record predates the name "wide"
# -- warped: harder than the training warps, so no network has seen these exact ranges
MAX_ROTATION_DEGREES, MAX_SHIFT_PIXELS, SCALE_RANGE, MAX_SHEAR = 15, 4, (0.8, 1.2), 0.25
# -- drawn: the page's canvas and pen (web/app.js)
PAD, PEN = 280, 19
DRAWINGS_PER_DIGIT = 100


def arc(cx, cy, rx, ry, start, end, points=24):
    """Points on an ellipse in a unit box (y down), from angle start to end in degrees."""
    t = np.radians(np.linspace(start, end, points))
    return list(zip(cx + rx * np.cos(t), cy - ry * np.sin(t)))


# Each digit's ways of writing it: strokes of (x, y) points in a unit box, y down.
STYLES = {
    0: [[arc(0.5, 0.5, 0.34, 0.5, 90, 450)]],
    1: [[[(0.5, 0.0), (0.5, 1.0)]], [[(0.25, 0.22), (0.55, 0.0), (0.55, 1.0)]],
        [[(0.3, 0.2), (0.55, 0.0), (0.55, 1.0)], [(0.3, 1.0), (0.8, 1.0)]]],
    2: [[arc(0.5, 0.3, 0.34, 0.3, 160, -30) + [(0.1, 1.0), (0.92, 1.0)]],
        [arc(0.5, 0.3, 0.34, 0.3, 170, -20) + [(0.15, 0.95)] + arc(0.3, 0.95, 0.12, 0.08, 90, 270)[3:] + [(0.95, 0.95)]]],
    3: [[arc(0.5, 0.26, 0.3, 0.25, 150, -90) + arc(0.5, 0.74, 0.34, 0.26, 90, -150)],
        [[(0.15, 0.02), (0.85, 0.02), (0.45, 0.42)] + arc(0.5, 0.7, 0.34, 0.28, 80, -150)]],
    4: [[[(0.62, 0.0), (0.08, 0.66), (0.95, 0.66)], [(0.7, 0.3), (0.7, 1.0)]],
        [[(0.22, 0.0), (0.15, 0.55), (0.88, 0.55)], [(0.75, 0.0), (0.75, 1.0)]]],
    5: [[[(0.85, 0.0), (0.25, 0.0), (0.2, 0.45)] + arc(0.5, 0.69, 0.34, 0.3, 130, -155)],
        [[(0.25, 0.0), (0.2, 0.45)] + arc(0.5, 0.69, 0.34, 0.3, 130, -155), [(0.25, 0.0), (0.85, 0.0)]]],
    6: [[arc(0.9, 0.7, 0.62, 0.7, 100, 180) + arc(0.5, 0.7, 0.32, 0.3, 180, 540)[1:]],
        [[(0.7, 0.0), (0.25, 0.55)] + arc(0.5, 0.7, 0.3, 0.3, 150, 510)[1:]]],
    7: [[[(0.08, 0.0), (0.92, 0.0), (0.38, 1.0)]],
        [[(0.08, 0.0), (0.92, 0.0), (0.45, 1.0)], [(0.35, 0.5), (0.82, 0.5)]],
        [[(0.1, 0.18), (0.1, 0.0), (0.9, 0.0), (0.6, 0.5), (0.5, 1.0)]]],
    8: [[arc(0.5, 0.25, 0.26, 0.24, -90, 270) + arc(0.5, 0.73, 0.32, 0.27, 90, -270)]],
    9: [[arc(0.45, 0.3, 0.3, 0.28, 0, 360), [(0.75, 0.3), (0.7, 1.0)]],
        [arc(0.45, 0.3, 0.3, 0.28, -10, 350) + arc(0.2, 0.3, 0.55, 0.7, 0, -75)[1:]]],
}


def warped_digits(images, rng):
    """MNIST digits moved, turned, scaled, sheared; a third thickened and a third thinned."""
    from PIL import Image

    out = np.empty_like(images)
    centre = np.array([14.0, 14.0])  # Pillow samples pixel centres: pixel i spans i to i + 1
    for i, image in enumerate(images):
        angle = np.radians(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
        scale, shear = np.exp(rng.uniform(*np.log(SCALE_RANGE))), rng.uniform(-MAX_SHEAR, MAX_SHEAR)
        shift = rng.uniform(-MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS, 2)
        forward = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ [[1, shear], [0, 1]]
        inverse = np.linalg.inv(forward)  # PIL asks, for each output pixel, where to read the input
        offset = centre - inverse @ (centre + shift)
        data = (*inverse[0], offset[0], *inverse[1], offset[1])
        picture = Image.fromarray(image.astype(np.float32), "F").transform((28, 28), Image.AFFINE, data, Image.BILINEAR)
        out[i] = np.clip(np.asarray(picture), 0, 255).round()
    padded = np.pad(out, ((0, 0), (0, 1), (0, 1)))
    thick = np.maximum.reduce([padded[:, :-1, :-1], padded[:, 1:, :-1], padded[:, :-1, 1:], padded[:, 1:, 1:]])
    thin = np.minimum.reduce([padded[:, :-1, :-1], padded[:, 1:, :-1], padded[:, :-1, 1:], padded[:, 1:, 1:]])
    change = rng.integers(0, 3, len(out))[:, None, None]
    return np.where(change == 1, thick, np.where(change == 2, thin, out)).astype(np.uint8)


def wobbly(points, rng, step=0.03, shake=0.006):
    """The path resampled every `step` of its length, with a hand's slow drift added."""
    along = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    at = np.linspace(0, along[-1], max(2, int(along[-1] / step)))
    path = np.stack([np.interp(at, along, points[:, 0]), np.interp(at, along, points[:, 1])], 1)
    drift = rng.normal(0, shake, path.shape).cumsum(0)
    return path + drift - drift.mean(0)


def drawn_digits(rng):
    """Pen paths drawn on the page's canvas and read through the page's conversion."""
    from PIL import Image, ImageDraw

    images, labels = [], []
    for digit, styles in STYLES.items():
        for k in range(DRAWINGS_PER_DIGIT):
            strokes = styles[k % len(styles)]
            height = rng.uniform(90, 240)
            width = height * rng.uniform(0.45, 0.9)
            slant, angle = rng.uniform(-0.4, 0.25), np.radians(rng.uniform(-15, 15))
            turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            centre = rng.uniform(PAD / 2 - 40, PAD / 2 + 40, 2)
            pad = Image.new("L", (PAD, PAD), 255)
            draw = ImageDraw.Draw(pad)
            for stroke in strokes:
                points = np.array(stroke) - 0.5 + rng.normal(0, 0.04, (len(stroke), 2))
                points = wobbly(points, rng)
                points[:, 0] += slant * -points[:, 1]
                points = (points * [width, height]) @ turn.T + centre
                path = [tuple(p) for p in points]
                draw.line(path, fill=0, width=PEN, joint="curve")
                for x, y in (path[0], path[-1]):  # round caps, like the page's pen
                    draw.ellipse((x - PEN / 2, y - PEN / 2, x + PEN / 2, y + PEN / 2), fill=0)
            png = io.BytesIO()
            pad.save(png, "PNG")
            name = f"drawn {digit}"
            images.append(analyze_classifier.to_mnist_digit(
                analyze_classifier.decode_grey_image(png.getvalue(), name), name))
            labels.append(digit)
    return np.array(images), np.array(labels)


def uci_digits():
    """scikit-learn's 8x8 digits, enlarged and brought to MNIST's format by the page's conversion."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for i, block in enumerate(digits.images):
        grey = Image.fromarray((block * 255 / 16).astype(np.float32), "F").resize((64, 64), Image.BILINEAR)
        grey = np.pad(np.asarray(grey), 8)  # a dark border: the paper the conversion looks for
        images.append(analyze_classifier.to_mnist_digit(grey, f"uci {i}"))
    return np.array(images), digits.target


def previous_weights(folder):
    """The 99.67% network's weights from git history, with a record naming its builder."""
    commit, arch = PREVIOUS
    path = Path(folder) / "previous.weights.h5"
    try:
        data = subprocess.run(["git", "show", f"{commit}:weights/classifier_model.weights.h5"], check=True,
                              capture_output=True, cwd=analyze.ROOT).stdout
    except (OSError, subprocess.CalledProcessError):
        raise analyze.DataError(f"--previous needs commit {commit} in the git history "
                                "(a shallow clone lacks it: git fetch --unshallow)") from None
    path.write_bytes(data)
    analyze.write_json_atomic({"builder": "train_classifier.build_classifier", "config": {"arch": arch}},
                              analyze.record_path(path))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=analyze.HelpFormatter)
    parser.add_argument("--weights", type=Path, action="append",
                        help="classifier weights to score; repeat for several (default: the shipped weights)")
    parser.add_argument("--previous", action="store_true", help=f"also score the network of {PREVIOUS[0]}")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as folder:
            columns = [(analyze.display_path(w), w) for w in args.weights or [analyze.CLASSIFIER_WEIGHTS]]
            if args.previous:
                columns.insert(0, (f"previous ({PREVIOUS[0]})", previous_weights(folder)))
            models = [(name, train_classifier.load_classifier(path)) for name, path in columns]
            test_images, test_labels = analyze.load_digits_csv(analyze.TEST_CSV)
            sets = [("MNIST test", (test_images, test_labels)),  # a generator each: one set never moves another
                    ("warped", (warped_digits(test_images, np.random.default_rng([SEED, 1])), test_labels)),
                    ("drawn", drawn_digits(np.random.default_rng([SEED, 2]))),
                    ("uci", uci_digits())]
    except analyze.DataError as exc:
        analyze.fail(exc)
    width = max(len(name) for name, _ in models) + 3
    print(f"{'set':<12}{'digits':>8}" + "".join(f"{name:>{width}}" for name, _ in models))
    robust = np.zeros(len(models))
    for set_name, (images, labels) in sets:
        scores = [analyze.accuracy(labels, analyze.classify(model, images).argmax(1)) for _, model in models]
        if set_name != "MNIST test":
            robust += np.array(scores) / (len(sets) - 1)
        print(f"{set_name:<12}{len(labels):>8,}" + "".join(f"{s:>{width}.2%}" for s in scores))
    print(f"{'mean of 3':<20}" + "".join(f"{s:>{width}.2%}" for s in robust))


if __name__ == "__main__":
    main()
