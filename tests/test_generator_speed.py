"""benchmarks/generator_speed.py: times the generation commands as run whole, says a failing one in a line."""

import sys

import pytest

import train_diffusion
from conftest import ROOT, assert_clean_failure, run_script

sys.path.insert(0, str(ROOT / "benchmarks"))
import generator_speed  # noqa: E402


def test_quick_run_times_the_gan_command_and_leaves_the_pictures_alone():
    picture = ROOT / "generated_digits" / "gan_generated_0.png"
    before = picture.stat().st_mtime_ns
    result = run_script("benchmarks/generator_speed.py", "--quick", "--models", "GAN")
    assert picture.stat().st_mtime_ns == before  # the commands drew into a temporary folder
    assert result.returncode == 0, result.stderr
    assert "family" in result.stdout.splitlines()[0]  # the machine, so timings can be told apart
    row = next(line for line in result.stdout.splitlines() if line.startswith("| train_gan.py"))
    whole, generation, passes, per_second = (float(cell) for cell in row.strip("|").split("|")[2:6])
    assert 0 < generation < whole  # the generation is part of the whole command
    assert passes == 1 and per_second == pytest.approx(10 / generation, rel=0.01)
    assert "no verdict" in result.stdout
    assert "distilled over full" not in result.stdout  # no diffusion command ran


def test_what_the_diffusion_command_says_is_parsed():
    said = "drawing with the distilled sampler in weights/distilled\n4 network passes per digit\n" \
           "generated 1,000 digits in 2.50 s\n"
    assert generator_speed.parse_run("diffusion", said) == {"digits": 1000, "generation": 2.5, "passes": 4}
    assert generator_speed.parse_run("diffusion-teacher", "generated 10 digits in 1.0 s") is None  # no passes
    assert generator_speed.parse_run("GAN", "generated 10 digits in 0.5 s")["passes"] == 1  # one pass a digit


def test_the_speed_up_is_the_distilled_samplers_over_the_full_ones(tmp_path):
    speeds = {"diffusion": 40.0, "diffusion-teacher": 10.0}
    assert generator_speed.speed_up_line({"diffusion": 40.0}, tmp_path, quick=False) is None
    assert "no distilled sampler" in generator_speed.speed_up_line(speeds, tmp_path, quick=False)
    student = tmp_path / train_diffusion.DISTILLED_DIR / train_diffusion.WEIGHT_FILES[1]
    student.parent.mkdir()
    student.touch()
    line = generator_speed.speed_up_line(speeds, tmp_path, quick=False)
    assert line.endswith("4.00x the digits/s; the bar is at least 3.5x: met"), line
    assert "not met" in generator_speed.speed_up_line({**speeds, "diffusion": 30.0}, tmp_path, quick=False)
    assert "no verdict" in generator_speed.speed_up_line(speeds, tmp_path, quick=True)


def test_a_failing_command_is_one_line(tmp_path):
    assert_clean_failure(run_script("benchmarks/generator_speed.py", "--quick", "--models", "diffusion",
                                    "--weights-dir", tmp_path), "train_diffusion.py failed", "not found")
    assert_clean_failure(run_script("benchmarks/generator_speed.py", "--repeats", "0"), "--repeats must be at least 1")
