"""The shipped weights draw and read exactly what they did before the code was trimmed:
tests/data/reference_digits.npz holds digits drawn (float32, seed 7) by the code as it was
before, with every option the shipped models do not use, and the shipped classifier's
probabilities (taken again whenever its weights change)."""

from pathlib import Path

import numpy as np
import pytest

import analyze

REFERENCE = Path(__file__).parent / "data" / "reference_digits.npz"


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as saved:
        return dict(saved)


def test_the_diffusion_model_draws_the_reference_digits(reference):
    import train_diffusion

    labels = reference["labels"]
    guided = train_diffusion.load_sampler(precision="float32", teacher=True)(labels, seed=7)
    plain = train_diffusion.load_sampler(precision="float32", autoguidance=1)(labels, seed=7, guidance=1,
                                                                               autoguidance=1)
    np.testing.assert_array_equal(guided, reference["diffusion"])
    np.testing.assert_array_equal(plain, reference["diffusion_unguided"])


def test_the_gan_draws_the_reference_digits(reference):
    import train_gan

    digits = train_gan.load_sampler(precision="float32")(reference["labels"], seed=7)
    np.testing.assert_array_equal(digits, reference["gan"])


def test_the_classifier_reads_the_reference_probabilities(reference):
    from train_classifier import load_classifier

    test_images, _ = analyze.load_digits_csv(analyze.TEST_CSV)
    probabilities = analyze.classify(load_classifier(analyze.CLASSIFIER_WEIGHTS), test_images[:50])
    np.testing.assert_allclose(probabilities, reference["classifier_probabilities"], rtol=0, atol=1e-6)
