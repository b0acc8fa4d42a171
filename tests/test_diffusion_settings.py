"""benchmarks/diffusion_settings.py: one table row per sampler setting, bad settings in one line."""

import re

from conftest import assert_clean_failure, run_script


def test_sweeps_every_combination_of_the_shipped_weights():
    result = run_script("benchmarks/diffusion_settings.py", "--per-digit", "2", "--steps", "2",
                        "--guidance", "1.5", "--solvers", "ddim", "dpm++2m", "--spacings", "angle", "logsnr")
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\| (ddim|dpm\+\+2m) \| (angle|logsnr) \| 2 \| 1\.5 \| \(0, inf\] \| 0 \|", result.stdout, re.M)
    assert sorted(rows) == sorted((s, p) for s in ("ddim", "dpm++2m") for p in ("angle", "logsnr")), result.stdout


def test_an_unknown_spacing_is_one_line():
    result = run_script("benchmarks/diffusion_settings.py", "--per-digit", "2", "--steps", "2",
                        "--guidance", "1.5", "--spacings", "cubic")
    assert_clean_failure(result, "invalid choice", "cubic")
