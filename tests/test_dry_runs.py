"""Dry runs prove the plumbing and never touch weights/: every training script, every mode."""

import hashlib

import pytest

import analyze
from conftest import run_script


def fingerprint():
    """Every file in weights/ and generated_digits/ (the shipped weights and pictures), but the
    web page's screenshot, which test_web_browser redraws on purpose, maybe at the same time."""
    return {path: hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in (analyze.WEIGHTS_DIR, analyze.FIGURES_DIR)
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != "web_page.png"}


# Starting over (mode 0) and continuing (1) take the same path in every generator script
# (analyze.start_or_resume), so the diffusion model's costly mode 0 is left to the GAN's.
@pytest.mark.parametrize("command, fresh", [
    (["train_classifier.py", "--dry-run", "--test-csv", ""], False),
    (["train_classifier.py", "--arch", "mlp", "--dry-run", "--test-csv", ""], False),
    (["train_diffusion.py", "--mode", "1", "--dry-run", "--num-per-digit", "1"], False),
    (["train_gan.py", "--dry-run", "--num-per-digit", "1"], True),
    (["train_gan.py", "--from-scratch", "--dry-run", "--num-per-digit", "1"], False),
], ids=lambda c: " ".join(c[:2] if c[1] != "--dry-run" else c[:1]) if isinstance(c, list) else "")
def test_dry_run_leaves_weights_and_pictures_byte_identical(tiny_csv, command, fresh):
    before = fingerprint()
    # One script in a fresh interpreter, as a user starts it (TensorFlow loads after analyze has
    # set its environment); the others in the test runner's children, with TensorFlow loaded.
    result = run_script(*command, "--csv", tiny_csv, fresh=fresh)
    assert result.returncode == 0, result.stderr
    assert "dry run: writing to" in result.stdout
    assert fingerprint() == before
