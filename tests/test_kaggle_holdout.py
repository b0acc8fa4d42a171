"""benchmarks/kaggle_holdout.py --score: a submission against the held-out answers."""

from conftest import assert_clean_failure, run_script


def test_score_counts_the_right_digits_and_a_missing_submission_is_one_line(tmp_path):
    (tmp_path / "answers.csv").write_text("ImageId,Label\n1,4\n2,6\n3,0\n4,9\n")
    assert_clean_failure(run_script("benchmarks/kaggle_holdout.py", "--score", tmp_path), "cannot read")
    (tmp_path / "submission.csv").write_text("ImageId,Label\n1,4\n2,6\n3,8\n4,9\n")
    result = run_script("benchmarks/kaggle_holdout.py", "--score", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 of 4 held-out digits right: 75.00%" in result.stdout
