"""`python analyze.py`: the report on every shipped model."""

import json

import pytest

import analyze
from conftest import run_script

SHIPPED = [name for name, path in (("diffusion", analyze.WEIGHTS_DIR / "diffusion_model.weights.h5"),
                                   ("GAN", analyze.WEIGHTS_DIR / "gan_generator.weights.h5")) if path.exists()]


@pytest.mark.skipif(not analyze.CLASSIFIER_WEIGHTS.exists(), reason="no shipped classifier weights")
def test_report_scores_every_shipped_model(tmp_path):
    result = run_script("analyze.py", "--samples-per-digit", "5", "--figures-dir", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    assert "classifier (cnn, classifier_model.weights.h5): test accuracy 99." in result.stdout
    assert (tmp_path / "classifier_confusion_test.png").exists()
    if SHIPPED:
        table = json.loads(result.stdout.strip().splitlines()[-1])
        assert [row["model"] for row in table] == SHIPPED
        for row in table:
            # Both shipped generators draw the requested digit >= 99.6% of the time at 2,000
            # samples; at 50 a broken sampler would score near 10%.
            assert row["requested_digit_accuracy"] >= 0.95, row
            assert row["fid"] >= 0 and row["digits_per_s"] > 0
        assert (tmp_path / "model_comparison.png").exists()


def test_report_rejects_bad_sample_count():
    result = run_script("analyze.py", "--samples-per-digit", "1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
