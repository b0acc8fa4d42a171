"""`python analyze.py`: the report on every shipped model."""

import json

import pytest

import analyze
from conftest import assert_clean_failure, run_script

SHIPPED = [name for name, path in (("diffusion", analyze.WEIGHTS_DIR / "diffusion_model.weights.h5"),
                                   ("GAN", analyze.WEIGHTS_DIR / "gan_generator.weights.h5")) if path.exists()]


@pytest.mark.skipif(not analyze.CLASSIFIER_WEIGHTS.exists(), reason="no shipped classifier weights")
def test_report_scores_every_shipped_model(tmp_path):
    result = run_script("analyze.py", "--samples-per-digit", "5", "--figures-dir", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    assert "classifier (wide_x2, classifier_model.weights.h5): test accuracy 99." in result.stdout
    assert (tmp_path / "classifier_confusion_test.png").exists()
    if SHIPPED:
        table = json.loads(result.stdout.strip().splitlines()[-1])
        assert [row["model"] for row in table] == SHIPPED
        for row in table:
            # Both shipped generators draw the requested digit >= 99.5% of the time at 2,000
            # samples; at 50 a broken sampler would score near 10%.
            assert row["requested_digit_accuracy"] >= 0.95, row
            assert row["fid"] >= 0 and row["digits_per_s"] > 0
        assert (tmp_path / "model_comparison.png").exists()


def test_report_rejects_bad_sample_count():
    result = run_script("analyze.py", "--per-digit", "1")  # the name every script shares
    assert_clean_failure(result, "--samples-per-digit must be at least 2")


def test_saved_metrics_keep_what_other_commands_stored(tmp_path, monkeypatch):
    """--save-metrics rewrites the report's own figures in a generator's record and keeps the
    rest (the Classification Accuracy Score that benchmarks/cas.py --save stored there)."""
    import numpy as np
    from types import SimpleNamespace

    monkeypatch.setattr(analyze, "WEIGHTS_DIR", tmp_path)
    analyze.write_json_atomic({"training": {"epochs": 3}, "metrics": {"fid": 9.0, "cas": {"accuracy": 0.98}}},
                              tmp_path / "g.json")
    def load_sampler(precision):
        return lambda labels, seed, progress=False: np.zeros((len(labels), 28, 28), np.uint8)

    stand_in = SimpleNamespace(MODEL_NAME="stand-in", WEIGHT_FILES=["g.weights.h5"], load_sampler=load_sampler,
                               SAMPLER_DEFAULTS={"steps": 3})  # the settings the figures were drawn with

    class FixedMetrics:  # what gets saved is under test here, not how it is measured
        def real_floor(self, per_digit):
            return {"fid": 0.5, "variety": 3.0, **dict.fromkeys(analyze.PAPER_KEYS, 0.0)}

        def score(self, images, labels):
            return {"requested_digit_accuracy": 1.0, "fid": 1.0, "variety": 2.0,
                    **dict.fromkeys(analyze.PAPER_KEYS, 1.0)}

    analyze.report_generators([stand_in], FixedMetrics(), 2, 0, tmp_path, save_metrics=True)
    metrics = json.loads((tmp_path / "g.json").read_text())["metrics"]
    assert metrics["fid"] == 1.0 and metrics["fid_real_floor"] == 0.5
    assert metrics["cas"] == {"accuracy": 0.98}
    assert metrics["sampler"] == {"steps": 3}
