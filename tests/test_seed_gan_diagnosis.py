"""benchmarks/seed_gan_diagnosis.py: the seed's GAN rebuilt, one change at a time."""

import re

from conftest import assert_clean_failure, run_script


def test_trains_a_variant_and_scores_its_samples(tmp_path):
    result = run_script("benchmarks/seed_gan_diagnosis.py", "--steps", "2", "--every", "1",
                        "--variants", "same-mode", "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^== (\S+)", result.stdout, re.M) == ["same-mode"], result.stdout
    # Scored in the shipped classifier's features, as the benchmarks/README table is.
    assert re.search(r"after 2 steps .*covering \d+ of 10 digits.*MNIST-FID \d", result.stdout), result.stdout
    assert (tmp_path / "seed_gan_diagnosis.png").stat().st_size > 0


def test_bad_step_counts_are_one_line():
    assert_clean_failure(run_script("benchmarks/seed_gan_diagnosis.py", "--steps", "0"), "--steps")
