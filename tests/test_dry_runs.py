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


@pytest.mark.parametrize("command", [
    ["train_classifier.py", "--dry-run", "--test-csv", ""],
    ["train_classifier.py", "--arch", "mlp", "--dry-run", "--test-csv", ""],
    ["train_diffusion.py", "--mode", "0", "--dry-run", "--num-per-digit", "1"],
    ["train_diffusion.py", "--mode", "1", "--dry-run", "--num-per-digit", "1"],
    ["train_gan.py", "--dry-run", "--num-per-digit", "1"],
    ["train_gan.py", "--from-scratch", "--dry-run", "--num-per-digit", "1"],
], ids=lambda c: " ".join(c[:2] if c[1] != "--dry-run" else c[:1]))
def test_dry_run_leaves_weights_and_pictures_byte_identical(tiny_csv, command):
    before = fingerprint()
    result = run_script(*command, "--csv", tiny_csv, fresh=True)  # each script once as a user starts it
    assert result.returncode == 0, result.stderr
    assert "dry run: writing to" in result.stdout
    assert fingerprint() == before
