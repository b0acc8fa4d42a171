"""benchmarks/diffusion_settings.py: one table row per sampler setting, bad settings in one line."""

import re

from conftest import ROOT, assert_clean_failure, run_script


def test_sweeps_every_combination_of_the_shipped_weights():
    result = run_script("benchmarks/diffusion_settings.py", "--per-digit", "2", "--steps", "2",
                        "--guidance", "1.5", "--solvers", "ddim", "dpm++2m", "--spacings", "angle", "logsnr",
                        "--paper-levels", "0", "3", "--intervals", "0,inf", "--precision", "float32")
    assert result.returncode == 0, result.stderr
    assert "samples per setting, float32;" in result.stdout  # drawn in the precision asked for
    rows = re.findall(r"^\| (ddim|dpm\+\+2m) \| (angle|logsnr) \| 2 \| 1\.5 \| \(0, inf\] \| 3 \| \(0\.6, 5\] \| 0 \| every step "
                      r"\| (0|3) \|"
                      r".* \| ([\d.]+)% \| ([\d.]+)% \| [\d.]+% \| [\d.]+% \| [\d,]+ \|$", result.stdout, re.M)
    settings = [row[:3] for row in rows]
    assert sorted(settings) == sorted((s, p, level) for s in ("ddim", "dpm++2m") for p in ("angle", "logsnr")
                                      for level in "03"), result.stdout
    by_level = {row[:3]: tuple(map(float, row[3:])) for row in rows}
    for solver, spacing, _ in settings:  # blanking 1-3 moves those pixels to 0, nothing else
        zero, faint = by_level[solver, spacing, "0"]
        zero_blanked, faint_blanked = by_level[solver, spacing, "3"]
        assert faint_blanked == 0 and abs(zero_blanked - (zero + faint)) <= 0.11


def test_autoguidance_without_a_weak_network_is_one_line(tmp_path):
    # The shipped weights have no weak network beside them (weights/autoguide) in this check's copy.
    for name in ("diffusion_model.weights.h5", "diffusion_model.json", "diffusion_ema.weights.h5"):
        (tmp_path / name).symlink_to(ROOT / "weights" / name)
    result = run_script("benchmarks/diffusion_settings.py", "--per-digit", "2", "--autoguidance", "2",
                        "--weights-dir", tmp_path)
    assert_clean_failure(result, "autoguidance needs a weak network", "has none")


def test_an_unknown_spacing_is_one_line():
    result = run_script("benchmarks/diffusion_settings.py", "--per-digit", "2", "--steps", "2",
                        "--guidance", "1.5", "--spacings", "cubic")
    assert_clean_failure(result, "invalid choice", "cubic")


def test_fresh_noise_beyond_ddpm_is_one_line():
    result = run_script("benchmarks/diffusion_settings.py", "--per-digit", "2", "--steps", "2",
                        "--solvers", "dpm++2m", "--etas", "1.5")
    assert_clean_failure(result, "--etas must be between 0 and 1")
