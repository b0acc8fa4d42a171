"""train_diffusion.py and train_gan.py end to end: prompt, dry-run training, resume,
generation, archives, reproducibility and bad input."""

import json

import numpy as np
import pytest

import analyze
from conftest import assert_clean_failure, run_script


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory, tiny_csv):
    """A dry-run diffusion model (mode 0), trained and sampled by the real script."""
    out = tmp_path_factory.mktemp("diffusion")
    weights = out / "d.weights.h5"
    result = run_script("train_diffusion.py", "--mode", "0", "--dry-run", "--csv", tiny_csv,
                        "--weights", weights, "--figures-dir", out, "--num-per-digit", "2",
                        "--output", out / "all.npz")
    assert result.returncode == 0, result.stderr
    return out, weights


def diffusion_args(out, weights, *extra):
    return ("train_diffusion.py", "--weights", weights, "--figures-dir", out, *extra)


def test_diffusion_dry_run_trains_saves_and_generates(diffusion_run):
    out, weights = diffusion_run
    record = json.loads(analyze.record_path(weights).read_text())
    assert record["training"]["epochs"] == 1 and record["config"]["widths"]
    for d in range(10):
        assert (out / f"ddim_generated_{d}.png").exists()
    with np.load(out / "all.npz") as archive:
        assert archive["images"].shape == (20, 28, 28) and archive["images"].dtype == np.uint8
        np.testing.assert_array_equal(archive["labels"], np.repeat(np.arange(10), 2))


def test_diffusion_resume_continues_the_epoch_count(tmp_path, diffusion_run, tiny_csv):
    out, weights = diffusion_run
    copy = tmp_path / "d.weights.h5"
    copy.write_bytes(weights.read_bytes())
    analyze.record_path(copy).write_text(analyze.record_path(weights).read_text())
    result = run_script(*diffusion_args(tmp_path, copy, "--mode", "1", "--dry-run", "--csv", tiny_csv,
                                        "--num-per-digit", "1", "--digit", "4"))
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/2" in result.stdout
    assert json.loads(analyze.record_path(copy).read_text())["training"]["epochs"] == 2


def test_diffusion_generation_is_reproducible_with_seed(tmp_path, diffusion_run):
    out, weights = diffusion_run
    archives = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        result = run_script(*diffusion_args(tmp_path, weights, "--mode", "2", "--digit", "3", "--steps", "3",
                                            "--num-per-digit", "4", "--seed", str(seed),
                                            "--output", tmp_path / f"{name}.npz"))
        assert result.returncode == 0, result.stderr
        with np.load(tmp_path / f"{name}.npz") as archive:
            archives.append(archive["images"])
            assert list(archive["labels"]) == [3] * 4
    np.testing.assert_array_equal(archives[0], archives[1])
    assert not np.array_equal(archives[0], archives[2])


@pytest.mark.parametrize("answers, expect_code, expect_text", [
    ("2\n", 0, "generated"),
    ("x\n7\n2\n", 0, "'x' is not a mode"),
    ("", 2, "no answer at the mode prompt"),
])
def test_diffusion_prompt(tmp_path, diffusion_run, answers, expect_code, expect_text):
    out, weights = diffusion_run
    result = run_script(*diffusion_args(tmp_path, weights, "--num-per-digit", "1", "--steps", "2"),
                        stdin=answers)
    assert result.returncode == expect_code, result.stderr
    assert expect_text in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    if expect_code == 2:
        assert_clean_failure(result, "pass --mode")


def test_diffusion_bad_flags_and_weights(tmp_path, diffusion_run):
    for flags, message in ((["--digit", "12"], "--digit must be 0-9"), (["--steps", "0"], "--steps must be at least 1"),
                           (["--mode", "5"], "invalid choice"), (["--output", "x.txt"], "must end in .npz")):
        assert_clean_failure(run_script("train_diffusion.py", *flags), message)
    result = run_script(*diffusion_args(tmp_path, tmp_path / "none.weights.h5", "--mode", "2"))
    assert_clean_failure(result, "not found", "train_diffusion.py --mode 0")
    junk = tmp_path / "junk.weights.h5"
    junk.write_text("not weights")
    assert_clean_failure(run_script(*diffusion_args(tmp_path, junk, "--mode", "2")), "does not fit")


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, tiny_csv):
    out = tmp_path_factory.mktemp("gan")
    result = run_script("train_gan.py", "--dry-run", "--csv", tiny_csv, "--weights-dir", out,
                        "--figures-dir", out, "--num-per-digit", "3", "--output", out / "all.npz")
    assert result.returncode == 0, result.stderr
    assert "d_acc_real" in result.stdout and "d_acc_fake" in result.stdout  # the health line
    return out


def test_gan_dry_run_trains_saves_and_generates(gan_run):
    assert (gan_run / "gan_generator.weights.h5").exists() and (gan_run / "gan_discriminator.weights.h5").exists()
    assert (gan_run / "gan_progress" / "epoch_001.png").exists()
    assert all((gan_run / f"gan_generated_{d}.png").exists() for d in range(10))
    with np.load(gan_run / "all.npz") as archive:
        assert archive["images"].shape == (30, 28, 28) and archive["images"].dtype == np.uint8
        assert sorted(set(archive["labels"])) == list(range(10))


def test_gan_resume_and_reproducible_generation(tmp_path, gan_run, tiny_csv):
    for name in ("gan_generator.weights.h5", "gan_discriminator.weights.h5", "gan_generator.json"):
        (tmp_path / name).write_bytes((gan_run / name).read_bytes())
    result = run_script("train_gan.py", "--dry-run", "--csv", tiny_csv, "--weights-dir", tmp_path,
                        "--figures-dir", tmp_path, "--num-per-digit", "1")
    assert result.returncode == 0, result.stderr
    assert "continuing from" in result.stdout and "Epoch 2/2" in result.stdout
    archives = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        result = run_script("train_gan.py", "--generate", "--weights-dir", tmp_path, "--figures-dir", tmp_path,
                            "--digit", "8", "--num-per-digit", "5", "--seed", str(seed),
                            "--output", tmp_path / f"{name}.npz")
        assert result.returncode == 0, result.stderr
        with np.load(tmp_path / f"{name}.npz") as archive:
            archives.append(archive["images"])
    np.testing.assert_array_equal(archives[0], archives[1])
    assert not np.array_equal(archives[0], archives[2])


def test_gan_bad_input(tmp_path):
    assert_clean_failure(run_script("train_gan.py", "--generate", "--digit", "12"), "--digit must be 0-9")
    result = run_script("train_gan.py", "--generate", "--weights-dir", tmp_path)
    assert_clean_failure(result, "not found", "python train_gan.py")
    (tmp_path / "gan_generator.weights.h5").write_text("junk")
    assert_clean_failure(run_script("train_gan.py", "--generate", "--weights-dir", tmp_path), "does not fit")
