"""benchmarks/generator_speed.py: times the generation commands as run whole, says a failing one in a line."""

from conftest import ROOT, assert_clean_failure, run_script


def test_quick_run_times_the_gan_command_and_leaves_the_pictures_alone():
    picture = ROOT / "generated_digits" / "gan_generated_0.png"
    before = picture.stat().st_mtime_ns
    result = run_script("benchmarks/generator_speed.py", "--quick", "--models", "GAN")
    assert picture.stat().st_mtime_ns == before  # the commands drew into a temporary folder
    assert result.returncode == 0, result.stderr
    assert "family" in result.stdout.splitlines()[0]  # the machine, so timings can be told apart
    row = next(line for line in result.stdout.splitlines() if line.startswith("| train_gan.py"))
    whole, generation = (float(cell) for cell in row.strip("|").split("|")[2:4])
    assert 0 < generation < whole  # the generation is part of the whole command
    assert "no verdict" in result.stdout


def test_a_failing_command_is_one_line(tmp_path):
    assert_clean_failure(run_script("benchmarks/generator_speed.py", "--quick", "--models", "diffusion",
                                    "--weights-dir", tmp_path), "train_diffusion.py failed", "not found")
    assert_clean_failure(run_script("benchmarks/generator_speed.py", "--repeats", "0"), "--repeats must be at least 1")
