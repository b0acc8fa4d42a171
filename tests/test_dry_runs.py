"""Dry runs prove the plumbing and never touch weights/: every training script, every mode."""

import hashlib

import pytest

import analyze
from conftest import run_script


def weights_fingerprint():
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(analyze.WEIGHTS_DIR.iterdir()) if path.is_file()}


@pytest.mark.parametrize("command", [
    ["train_classifier.py", "--dry-run", "--test-csv", ""],
    ["train_classifier.py", "--arch", "mlp", "--dry-run", "--test-csv", ""],
    ["train_diffusion.py", "--mode", "0", "--dry-run", "--num-per-digit", "1"],
    ["train_diffusion.py", "--mode", "1", "--dry-run", "--num-per-digit", "1"],
    ["train_gan.py", "--dry-run", "--num-per-digit", "1"],
    ["train_gan.py", "--from-scratch", "--dry-run", "--num-per-digit", "1"],
], ids=lambda c: " ".join(c[:2] if c[1] != "--dry-run" else c[:1]))
def test_dry_run_leaves_weights_byte_identical(tmp_path, tiny_csv, command):
    before = weights_fingerprint()
    result = run_script(*command, "--csv", tiny_csv, "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dry run: writing to" in result.stdout
    assert weights_fingerprint() == before
