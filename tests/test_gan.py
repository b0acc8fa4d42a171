"""train_gan.py end to end (with no mode: start a run, or continue the checkpoint there is;
dry runs and weights a real run made; drawing with the moving-average generator; damaged
weights and records) and its networks: the projection discriminator, its digit head and the
moving average's warm-up. What it shares with train_diffusion.py is in test_generators.py."""

import json

import numpy as np
import pytest

import analyze
import train_gan
from conftest import SAME_ROUNDING, assert_clean_failure, copy_weights, run_script

GENERATOR, DISCRIMINATOR, AVERAGE = train_gan.WEIGHT_FILES
TINY = {"noise_dim": 8, "width": 8}


def gan_args(folder, *extra):
    return ("train_gan.py", "--weights-dir", folder, "--figures-dir", folder, *extra)


# -- the script --------------------------------------------------------------------------------

def test_with_no_mode_an_empty_folder_starts_a_run_that_saves_and_generates(gan_training):
    out, result = gan_training.dir, gan_training.result  # `train_gan.py --dry-run` on an empty folder
    assert "continuing from" not in result.stdout
    assert "dry run: writing to" not in result.stdout  # a folder of its own, not weights/: written as asked
    assert "d_acc_real" in result.stdout and "d_acc_fake" in result.stdout  # the health line
    record = analyze.read_record(out / GENERATOR)
    assert record["builder"] == train_gan.BUILDER and record["config"] == train_gan.MODEL_CONFIG
    training = record["training"]
    assert training["epochs"] == 1 and len(training["commands"]) == 1 and training["dry_run"] is True
    assert training["ema_decay"] == train_gan.EMA_DECAY
    assert all((out / name).is_file() for name in train_gan.WEIGHT_FILES)
    assert (out / "gan_progress" / "epoch_001.png").exists()
    assert all((out / f"gan_generated_{d}.png").exists() for d in range(10))
    with np.load(out / "all.npz") as archive:
        assert archive["images"].shape == (30, 28, 28) and archive["images"].dtype == np.uint8
        np.testing.assert_array_equal(archive["labels"], np.repeat(np.arange(10), 3))


def test_with_no_mode_the_checkpoint_there_is_continues(tmp_path, gan_run, tiny_csv):
    copy_weights(gan_run, tmp_path, train_gan.WEIGHT_FILES)
    result = run_script(*gan_args(tmp_path, "--dry-run", "--csv", tiny_csv, "--num-per-digit", "1", "--digit", "8"))
    assert result.returncode == 0, result.stderr
    assert "continuing from" in result.stdout and "(1 epochs so far)" in result.stdout
    assert "Epoch 2/2" in result.stdout
    training = analyze.read_record(tmp_path / GENERATOR)["training"]
    assert training["epochs"] == 2 and len(training["commands"]) == 2 and len(training["history"]) == 2


@pytest.mark.parametrize("missing", [DISCRIMINATOR, AVERAGE])
def test_continuing_needs_all_three_files(tmp_path, gan_run, tiny_csv, missing):
    # The generator is there, so no mode means continue: a file missing is one line, not a fresh start.
    copy_weights(gan_run, tmp_path, [name for name in train_gan.WEIGHT_FILES if name != missing],
                 record_of=GENERATOR)
    result = run_script(*gan_args(tmp_path, "--dry-run", "--csv", tiny_csv, "--num-per-digit", "1"))
    assert_clean_failure(result, f"{missing} not found", train_gan.MAKE_COMMAND)
    assert "Epoch" not in result.stdout and not (tmp_path / missing).exists()


def test_the_average_generator_draws_and_nothing_else(tmp_path, gan_run):
    # Drawing needs the moving average and the record alone.
    copy_weights(gan_run, tmp_path, [AVERAGE], record_of=GENERATOR)
    average, generator = (train_gan.build_generator(**train_gan.MODEL_CONFIG) for _ in range(2))
    average.load_weights(gan_run / AVERAGE)
    generator.load_weights(gan_run / GENERATOR)
    assert not all(np.array_equal(a, g) for a, g in zip(average.get_weights(), generator.get_weights()))
    sampler = train_gan.load_sampler(tmp_path, SAME_ROUNDING)
    for got, want in zip(sampler.network.get_weights(), average.get_weights()):
        np.testing.assert_array_equal(got, want)
    # Without it there is nothing to draw with, even beside the generator being trained.
    (tmp_path / AVERAGE).unlink()
    copy_weights(gan_run, tmp_path, [GENERATOR])
    with pytest.raises(analyze.DataError, match=f"{AVERAGE} not found"):
        train_gan.load_sampler(tmp_path, SAME_ROUNDING)


def test_a_dry_run_never_writes_over_weights_a_real_run_made(tmp_path, gan_run, tiny_csv):
    copy_weights(gan_run, tmp_path, train_gan.WEIGHT_FILES)
    record_file = analyze.record_path(tmp_path / GENERATOR)
    record = json.loads(record_file.read_text())
    assert record["training"].pop("dry_run") is True  # what lets the test above write in place
    record_file.write_text(json.dumps(record))  # now they are a real run's

    def weights_and_record():  # the pictures go to --figures-dir, here the same folder, as asked
        return {path.name: path.read_bytes() for path in tmp_path.glob("*") if path.suffix in (".h5", ".json")}

    before = weights_and_record()
    for mode in ("--mode", "1"), ("--from-scratch",):
        result = run_script(*gan_args(tmp_path, *mode, "--dry-run", "--csv", tiny_csv, "--num-per-digit", "1"))
        assert result.returncode == 0, result.stderr
        assert "gan_generator.weights.h5 was made by a real run" in result.stdout, result.stdout
    assert weights_and_record() == before and len(before) == len(train_gan.WEIGHT_FILES) + 1


@pytest.mark.parametrize("damage, message", [("{", "is not a readable JSON object"),
                                             ('{"config": {}, "training": 3}', '"training" should be an object')])
def test_a_damaged_record_is_one_line_not_a_guess_at_the_network(tmp_path, gan_run, damage, message):
    copy_weights(gan_run, tmp_path, train_gan.WEIGHT_FILES)
    analyze.record_path(tmp_path / GENERATOR).write_text(damage)
    result = run_script(*gan_args(tmp_path, "--generate"))
    assert_clean_failure(result, "gan_generator.json", message)


def test_a_config_that_builds_no_discriminator_is_one_line(tmp_path, gan_run, tiny_csv):
    copy_weights(gan_run, tmp_path, train_gan.WEIGHT_FILES)
    record_file = analyze.record_path(tmp_path / GENERATOR)
    record = json.loads(record_file.read_text())
    record["config"]["class_weight"] = -0.5
    record_file.write_text(json.dumps(record))
    result = run_script(*gan_args(tmp_path, "--dry-run", "--csv", tiny_csv, "--num-per-digit", "1"))
    assert_clean_failure(result, "gan_generator.json", "does not build", "class_weight must be >= 0",
                         train_gan.MAKE_COMMAND)
    assert "Epoch" not in result.stdout


# -- the networks, in-process ------------------------------------------------------------------

@pytest.mark.parametrize("class_weight", [0.0, 0.2])
def test_gan_step_moves_the_average_generator_by_the_warmed_up_decay(class_weight):
    gan = train_gan.make_gan({**TINY, "class_weight": class_weight})
    gan.compile()
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), np.arange(4)
    before = gan.ema_generator.get_weights()
    logs = gan.train_step((images, labels))
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    after, generator = gan.ema_generator.get_weights(), gan.generator.get_weights()
    decay = 2 / 11  # after the first step: min(EMA_DECAY, (1 + 1) / (10 + 1)), the warm-up
    assert any(not np.allclose(g, b) for g, b in zip(generator, before))  # the step moved G
    for average, old, new in zip(after, before, generator):
        np.testing.assert_allclose(average, decay * old + (1 - decay) * new, rtol=1e-5, atol=1e-6)


def test_projection_discriminator_judges_the_digit_it_is_told():
    import keras

    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
    plain = train_gan.build_discriminator(8, class_weight=0.0)
    as_three = plain([images, np.full(3, 3, np.int32)], training=False)
    as_seven = plain([images, np.full(3, 7, np.int32)], training=False)
    assert as_three.shape == (3, 1) and not np.allclose(as_three, as_seven)
    # With a digit head: the realness still depends on the digit told, the head's reading does not.
    headed = train_gan.build_discriminator(8, class_weight=0.2)
    (real_three, digits_three), (real_seven, digits_seven) = (
        headed([images, np.full(3, d, np.int32)], training=False) for d in (3, 7))
    assert digits_three.shape == (3, 10) and not np.allclose(real_three, real_seven)
    np.testing.assert_allclose(digits_three, digits_seven)


def test_generator_is_rewarded_by_the_digit_head_as_class_weight_says():
    import keras

    def first_step_losses(class_weight):
        keras.utils.set_random_seed(0)  # the same networks, digits and noise for both weights
        gan = train_gan.make_gan({**TINY, "class_weight": class_weight})
        gan.compile()
        realness, digits = gan.discriminator.outputs
        assert realness.shape[-1] == 1 and digits.shape[-1] == 10
        images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
        return {k: float(v) for k, v in gan.train_step((images, np.arange(4))).items()}

    light, heavy = first_step_losses(0.2), first_step_losses(2.0)
    assert light["d_loss"] == pytest.approx(heavy["d_loss"])  # D learns its head at weight 1 either way
    assert heavy["g_loss"] > light["g_loss"] + 1.0  # 1.8 x a ten-way cross-entropy of about log(10)
    with pytest.raises(ValueError, match="class_weight"):
        train_gan.build_discriminator(8, class_weight=-1.0)
