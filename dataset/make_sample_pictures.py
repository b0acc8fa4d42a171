"""Write the sample pictures in dataset/samples/ that the README's quick start recognizes.

    python dataset/make_sample_pictures.py                 # rewrites dataset/samples/
    python dataset/make_sample_pictures.py --out-dir /tmp/x  # somewhere else

They are deliberately unlike MNIST's tidy 28x28 arrays, the way a user's own pictures are:
 - photo_*: MNIST test digits blown up to a few hundred pixels, placed off-centre, on
   tinted paper, blurred, with sensor noise, some light ink on dark, saved as PNG or JPEG;
 - printed_*: digits typeset in matplotlib's bundled fonts, which MNIST never saw.
The digit each picture shows is the first character after the prefix in its file name.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import analyze  # noqa: E402

OUT = HERE / "samples"
SEED = 7
PHOTOS = [  # (index into the MNIST test set, dark ink on light paper?, file type)
    (0, True, "png"), (1, True, "jpg"), (2, False, "png"), (3, True, "png"), (4, False, "jpg"),
]
PRINTED = [("3", "DejaVu Sans"), ("5", "DejaVu Serif"), ("8", "DejaVu Sans Mono"), ("9", "DejaVu Sans")]


def photo(digit, dark_ink, rng):
    import tensorflow as tf

    scale = int(rng.integers(6, 10))
    big = tf.image.resize(digit[None, ..., None].astype(np.float32), (28 * scale, 28 * scale),
                          method="bicubic").numpy()[0, ..., 0].clip(0, 255)
    height, width = 28 * scale + int(rng.integers(60, 160)), 28 * scale + int(rng.integers(60, 200))
    canvas = np.zeros((height, width), np.float32)
    top, left = int(rng.integers(0, height - big.shape[0])), int(rng.integers(0, width - big.shape[1]))
    canvas[top:top + big.shape[0], left:left + big.shape[1]] = big
    canvas = tf.nn.avg_pool2d(canvas[None, ..., None], 3, 1, "SAME").numpy()[0, ..., 0]  # soft focus
    ink = canvas / 255
    paper = np.array([235, 228, 205]) if dark_ink else np.array([40, 45, 60])
    pen = np.array([30, 40, 110]) if dark_ink else np.array([240, 240, 230])
    rgb = paper * (1 - ink[..., None]) + pen * ink[..., None]
    rgb += rng.normal(0, 6, rgb.shape)  # sensor noise
    return rgb.clip(0, 255).astype(np.uint8)


def write_pictures(out_dir, seed):
    import matplotlib
    import tensorflow as tf

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(seed)
    with np.load(analyze.BUNDLE) as mnist:
        images, labels = mnist["x_test"], mnist["y_test"]
    for index, dark_ink, kind in PHOTOS:
        pixels = photo(images[index], dark_ink, rng)
        encoded = tf.io.encode_png(pixels) if kind == "png" else tf.io.encode_jpeg(pixels, quality=85)
        path = out_dir / f"photo_{labels[index]}_{index}.{kind}"
        with analyze.atomic_path(path) as tmp:
            tmp.write_bytes(encoded.numpy())
        print(f"wrote {analyze.display_path(path)}")
    for text, font in PRINTED:
        fig = plt.figure(figsize=(1.6, 2.0), dpi=100)
        fig.text(0.5, 0.5, text, fontsize=90, family=font, ha="center", va="center")
        path = out_dir / f"printed_{text}_{font.replace(' ', '')}.png"
        with analyze.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        print(f"wrote {analyze.display_path(path)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=analyze.HelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=OUT, help="where the pictures go")
    parser.add_argument("--seed", type=analyze.seed_argument, default=SEED,
                        help="random seed (the committed pictures use the default)")
    args = parser.parse_args()
    try:
        write_pictures(args.out_dir, args.seed)
    except analyze.DataError as exc:
        analyze.fail(exc)


if __name__ == "__main__":
    main()
