"""Every script answers --help (with its defaults) without doing its work (no pictures written),
and a misspelled or bad flag is one line. The shared flags have the same names everywhere."""

import re

import pytest

from conftest import ROOT, assert_clean_failure, run_script

SCRIPTS = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("*.py"), *ROOT.glob("benchmarks/*.py"),
                                                     ROOT / "dataset" / "make_sample_pictures.py"])
DRAWS_DIGITS = ["train_diffusion.py", "train_gan.py", "analyze.py", "benchmarks/cas.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_states_defaults_and_a_bad_flag_is_one_line(script):
    before = sorted(p.name for p in (ROOT / "generated_digits").iterdir())
    result = run_script(script, "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "(default:" in result.stdout, result.stdout
    assert sorted(p.name for p in (ROOT / "generated_digits").iterdir()) == before
    assert_clean_failure(run_script(script, "--no-such-flag", timeout=60))


@pytest.mark.parametrize("script", DRAWS_DIGITS)
def test_digits_per_class_is_per_digit_everywhere(script):
    assert re.search(r"--per-digit\b", run_script(script, "--help", timeout=60).stdout)


def test_web_speed_without_a_server_is_one_line():
    result = run_script("benchmarks/web_speed.py", "--url", "http://127.0.0.1:9/", timeout=60)
    assert_clean_failure(result, "did not answer", "127.0.0.1:9")
