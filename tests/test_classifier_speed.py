"""benchmarks/classifier_speed.py --quick: both recipes train, the table and the figure come out."""

import json

from conftest import run_script


def test_speed_benchmark_quick(tmp_path, tiny_csv, tiny_test_csv):
    result = run_script("benchmarks/classifier_speed.py", "--quick", "--csv", tiny_csv,
                        "--test-csv", tiny_test_csv, "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["quick"] is True
    for name in ("ours", "keras.io"):
        assert summary[name]["epochs"] == 1 and summary[name]["train_seconds"] > 0
        assert 0 <= summary[name]["final_accuracy"] <= 1
        assert set(summary[name]["seconds_to"]) == {"0.990", "0.992", "0.995"}
    assert "| recipe" in result.stdout and "s to 99.2%" in result.stdout
    assert (tmp_path / "classifier_speed.png").stat().st_size > 1000
