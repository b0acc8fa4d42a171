"""Users' own digit pictures: decoding and MNIST-style conversion (synthetic pictures)."""

import numpy as np
import pytest

import analyze
import analyze_classifier as ac
from analyze import DataError


def encode_png(pixels):
    import tensorflow as tf

    pixels = np.asarray(pixels, np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return tf.io.encode_png(pixels).numpy()


def photo_of(digit, size=(260, 300), top_left=(40, 110), scale=6, dark_ink=True, rgb=False):
    """A big, off-centre, possibly inverted/colour picture of an MNIST digit."""
    big = np.kron(digit.astype(np.float32), np.ones((scale, scale), np.float32))
    canvas = np.zeros(size, np.float32)
    y, x = top_left
    canvas[y:y + big.shape[0], x:x + big.shape[1]] = big[:size[0] - y, :size[1] - x]
    grey = 255 - canvas if dark_ink else canvas
    if rgb:  # blue ink on cream paper
        grey = np.stack([grey, grey * 0.95, np.clip(grey * 0.8 + 40, 0, 255)], axis=-1)
    return np.clip(grey, 0, 255)


def centre_of_mass(image):
    total = image.sum()
    ys, xs = np.indices(image.shape)
    return (ys * image).sum() / total, (xs * image).sum() / total


@pytest.mark.parametrize("dark_ink, rgb", [(True, False), (False, False), (True, True)])
def test_converted_picture_looks_like_the_mnist_digit(tmp_path, mnist, dark_ink, rgb):
    digit = mnist["x_test"][0]
    path = tmp_path / "digit.png"
    path.write_bytes(encode_png(photo_of(digit, dark_ink=dark_ink, rgb=rgb)))
    converted = ac.load_picture(path)
    assert converted.shape == (28, 28) and converted.dtype == np.uint8
    assert converted.max() == 255 and converted[0].max() == 0  # ink bright, paper black
    cy, cx = centre_of_mass(converted.astype(float))
    assert abs(cy - 14) < 0.75 and abs(cx - 14) < 0.75
    rows, cols = np.nonzero(converted > 40)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 21  # fitted into the 20x20 box
    # Same shape as the original MNIST digit, which was made the same way.
    correlation = np.corrcoef(converted.ravel().astype(float), digit.ravel().astype(float))[0, 1]
    assert correlation > 0.8


def test_transparent_png_counts_as_paper(tmp_path, mnist):
    digit = mnist["x_test"][1]
    alpha = np.kron(digit, np.ones((4, 4), np.uint8))
    rgba = np.zeros(alpha.shape + (4,), np.uint8)
    rgba[..., 3] = alpha  # black ink painted on a transparent layer
    path = tmp_path / "t.png"
    path.write_bytes(encode_png(rgba))
    converted = ac.load_picture(path)
    assert np.corrcoef(converted.ravel().astype(float), digit.ravel().astype(float))[0, 1] > 0.8


def test_jpeg_is_read(tmp_path, mnist):
    import tensorflow as tf

    pixels = photo_of(mnist["x_test"][2], size=(120, 100), top_left=(5, 10), scale=3)
    path = tmp_path / "d.jpg"
    path.write_bytes(tf.io.encode_jpeg(pixels[..., None].astype(np.uint8)).numpy())
    assert ac.load_picture(path).max() == 255


def test_unreadable_and_blank_pictures_raise_clear_errors(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(DataError, match="not a readable PNG"):
        ac.load_picture(text)
    blank = tmp_path / "blank.png"
    blank.write_bytes(encode_png(np.full((50, 50), 250)))
    with pytest.raises(DataError, match="no digit found"):
        ac.load_picture(blank)
    with pytest.raises(DataError, match="cannot read"):
        ac.load_picture(tmp_path / "missing.png")


def test_digit_mosaic_puts_each_digit_in_its_cell_on_blank_paper(mnist):
    digits = mnist["x_test"][:7]
    mosaic = analyze.digit_mosaic(digits, columns=3, gap=6)
    assert mosaic.shape == (3 * 34 - 6, 3 * 34 - 6)
    for i, digit in enumerate(digits):
        top, left = (i // 3) * 34, (i % 3) * 34
        np.testing.assert_array_equal(mosaic[top:top + 28, left:left + 28], digit)
    assert mosaic[28:34].max() == 0 and mosaic[:, 28:34].max() == 0  # the paper between them
    assert mosaic[68:, 34:].max() == 0  # the last row's two empty cells
