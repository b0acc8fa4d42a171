"""benchmarks/gan_checkpoints.py: scores generator weights files side by side."""

import analyze
from conftest import assert_clean_failure, run_script


def test_scores_the_shipped_generator_and_names_a_missing_file(tmp_path):
    result = run_script("benchmarks/gan_checkpoints.py", "--per-digit", "5", "--precision", "float32",
                        "weights/gan_generator.weights.h5")
    assert result.returncode == 0, result.stderr
    assert "seed 0, float32;" in result.stdout  # drawn in the precision asked for
    row = [line for line in result.stdout.splitlines() if line.startswith("| weights/gan_generator")]
    epochs = analyze.read_record(analyze.WEIGHTS_DIR / "gan_generator.weights.h5")["training"]["epochs"]
    assert len(row) == 1 and f"| {epochs} |" in row[0], result.stdout  # the epochs come from its record
    assert_clean_failure(run_script("benchmarks/gan_checkpoints.py", tmp_path / "none.weights.h5"), "not found")
