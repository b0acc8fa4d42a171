"""benchmarks/web_hostile.py --quick: hostile pictures are refused or read within the bars."""

from conftest import run_script


def test_quick_run_meets_every_bar():
    result = run_script("benchmarks/web_hostile.py", "--quick", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "picture" not in line]
    assert len(rows) == 5 and all(row.endswith("| met |") for row in rows), result.stdout
    assert "| 400 |" in result.stdout and "| 200 |" in result.stdout  # refused and read, both seen
    assert "decoded: 200 in" in result.stdout
