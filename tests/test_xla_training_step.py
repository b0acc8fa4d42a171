"""benchmarks/xla_training_step.py: both settings train, one row per model, bad names refused."""

from conftest import run_script


def test_times_the_gan_step_both_ways_and_refuses_unknown_models():
    result = run_script("benchmarks/xla_training_step.py", "--models", "GAN", "--steps", "1")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| GAN |")]
    assert len(rows) == 1 and rows[0].count(" ms ") == 2 and rows[0].rstrip().endswith("x |"), result.stdout
    result = run_script("benchmarks/xla_training_step.py", "--models", "VAE")
    assert result.returncode == 2 and "unknown model VAE" in result.stderr
