"""benchmarks/ink_range.py: per digit, how much of the page generated digits ink beside real ones."""

import importlib.util
import re
import shutil

import numpy as np

from conftest import ROOT, assert_clean_failure, run_script


def load_benchmark():
    spec = importlib.util.spec_from_file_location("ink_range", ROOT / "benchmarks" / "ink_range.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_generator_drawing_real_inks_shows_real_tails():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 2000)
    real = rng.normal(0.05 + labels / 100, 0.02)
    same, narrow = rng.normal(0.05 + labels / 100, 0.02), rng.normal(0.05 + labels / 100, 0.01)
    ink_table = load_benchmark().ink_table
    *_, bold, thin = ink_table(real, labels, same, labels)[1]
    assert abs(bold - 0.05) < 0.01 and abs(thin - 0.05) < 0.01
    rows, overall = ink_table(real, labels, narrow, labels)
    assert len(rows) == 10 and [row[0] for row in rows] == list(range(10))
    assert overall[-2] < 0.01 and overall[-1] < 0.01  # half the spread: almost no digit in either tail
    np.testing.assert_allclose(overall[6] / overall[2], 0.5, atol=0.03)


def test_the_gan_in_a_weights_folder(tmp_path):
    for name in ("gan_generator.weights.h5", "gan_generator.json"):
        shutil.copy(f"weights/{name}", tmp_path / name)
    result = run_script("benchmarks/ink_range.py", "--per-digit", "20", "--weights-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\| (\d|all) \| [\d.]+ \| [\d.]+ \| [\d.]+-[\d.]+ \| [\d.]+ \| [\d.]+ \(\d+%\) "
                      r"\| [\d.]+-[\d.]+ \| [\d.]+% \| [\d.]+% \|$", result.stdout, re.M)
    assert rows == [*map(str, range(10)), "all"], result.stdout
    assert "GAN" in result.stdout and "diffusion" not in result.stdout


def test_bad_requests_are_one_line(tmp_path):
    assert_clean_failure(run_script("benchmarks/ink_range.py", "--per-digit", "5"), "at least 20")
    assert_clean_failure(run_script("benchmarks/ink_range.py", "--weights-dir", tmp_path), "no trained generator")
