"""benchmarks/classifier_robustness.py: its sets are fixed and come out in MNIST's format."""

import sys

import numpy as np

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import classifier_robustness  # noqa: E402


def test_drawings_go_through_the_page_conversion_and_repeat_exactly(monkeypatch):
    monkeypatch.setattr(classifier_robustness, "DRAWINGS_PER_DIGIT", 1)
    first, labels = classifier_robustness.drawn_digits(np.random.default_rng(1))
    again, _ = classifier_robustness.drawn_digits(np.random.default_rng(1))
    np.testing.assert_array_equal(first, again)
    assert first.shape == (10, 28, 28) and first.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.arange(10))
    for digit in first:  # as analyze_classifier makes them: ink within 20x20, centred by mass
        rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 20
        centre = (digit.sum(1) * np.arange(28)).sum() / digit.sum()
        assert abs(centre - 14) <= 1


def test_warped_digits_change_every_digit_but_keep_its_ink(mnist):
    images = mnist["x_test"][:200]
    warped = classifier_robustness.warped_digits(images, np.random.default_rng(0))
    np.testing.assert_array_equal(warped, classifier_robustness.warped_digits(images, np.random.default_rng(0)))
    assert warped.dtype == np.uint8 and (warped != images).any(axis=(1, 2)).all()
    ink_ratio = warped.reshape(200, -1).sum(1) / images.reshape(200, -1).sum(1)
    assert 0.3 < np.median(ink_ratio) < 3
