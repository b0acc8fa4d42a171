"""train_diffusion.py and train_gan.py end to end: prompt, dry-run training, resume,
generation, archives, reproducibility, bad input; the contract both keep for analyze.py
and the web page; and the diffusion sampler against a network that knows the answer."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import analyze
import train_diffusion
import train_gan
from conftest import assert_clean_failure, run_script


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory, tiny_csv):
    """A dry-run diffusion model (mode 0), trained and sampled by the real script."""
    out = tmp_path_factory.mktemp("diffusion")
    result = run_script("train_diffusion.py", "--mode", "0", "--dry-run", "--csv", tiny_csv,
                        "--weights-dir", out, "--figures-dir", out, "--num-per-digit", "2",
                        "--output", out / "all.npz")
    assert result.returncode == 0, result.stderr
    return out


def diffusion_args(out, *extra):
    return ("train_diffusion.py", "--weights-dir", out, "--figures-dir", out, *extra)


# Draws compared pixel for pixel across two loads use float32: in bfloat16 two builds of the same
# network in one process were seen to round a few pixels one grey level apart (only the first
# build in a process differed, so apparently through the layers' generated names).
SAME_ROUNDING = "float32"


def copy_weights(source, target, names):
    for name in names:
        (target / name).write_bytes((source / name).read_bytes())
    record = analyze.record_path(source / names[0])
    analyze.record_path(target / names[0]).write_text(record.read_text())


def test_diffusion_dry_run_trains_saves_and_generates(diffusion_run):
    out = diffusion_run
    record = json.loads(analyze.record_path(out / "diffusion_model.weights.h5").read_text())
    assert record["training"]["epochs"] == 1 and record["config"]["widths"]
    assert record["training"]["learning_rate"]["decay"] == "cosine to 0"
    assert record["training"]["loss_weighting"] == train_diffusion.LOSS_WEIGHTING == "v"
    assert all((out / name).is_file() for name in train_diffusion.WEIGHT_FILES)
    for d in range(10):
        assert (out / f"ddim_generated_{d}.png").exists()
    with np.load(out / "all.npz") as archive:
        assert archive["images"].shape == (20, 28, 28) and archive["images"].dtype == np.uint8
        np.testing.assert_array_equal(archive["labels"], np.repeat(np.arange(10), 2))


def test_network_flags_build_a_new_run_and_cannot_change_a_trained_one(tmp_path, tiny_csv, diffusion_run):
    # (--blocks 2 is trained in test_unet_options_train; here only its record is, below: a
    # deeper network would double the time of both dry runs.)
    result = run_script(*diffusion_args(tmp_path, "--mode", "0", "--dry-run", "--widths", "32", "64", "--attention",
                                        "--ink", "--loss-weighting", "min-snr", "--csv", tiny_csv,
                                        "--num-per-digit", "1", "--digit", "0"))
    assert result.returncode == 0, result.stderr
    assert "v_loss" in result.stdout  # a weighted run also shows the plain loss, to compare runs by
    record = analyze.read_record(tmp_path / train_diffusion.WEIGHT_FILES[0])
    assert record["config"]["attention"] is True and record["config"]["blocks"] == 1 and record["config"]["ink"]
    assert record["config"]["widths"] == [32, 64]
    # The ink the sampler draws from: the training digits' (tiny_csv's), per digit.
    images, labels = analyze.load_digits_csv(tiny_csv)
    assert record["ink_quantiles"] == train_diffusion.ink_quantiles(images, labels)
    assert record["training"]["loss_weighting"] == "min-snr"
    assert_clean_failure(run_script(*diffusion_args(tmp_path, "--mode", "1", "--loss-weighting", "v")),
                         "trained with --loss-weighting min-snr")
    # Continued without the flag, it keeps training as its record says.
    result = run_script(*diffusion_args(tmp_path, "--mode", "1", "--dry-run", "--csv", tiny_csv,
                                        "--num-per-digit", "1", "--digit", "0"))
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/2" in result.stdout and "v_loss" in result.stdout
    continued = analyze.read_record(tmp_path / train_diffusion.WEIGHT_FILES[0])
    assert continued["training"]["loss_weighting"] == "min-snr"
    assert continued["ink_quantiles"] == record["ink_quantiles"]
    assert_clean_failure(run_script(*diffusion_args(tmp_path, "--mode", "2", "--widths", "64", "128",
                                                    "--no-attention", "--no-ink")),
                         "built with widths=[32, 64], attention=True, ink=True")
    # A weak network that is not told the ink cannot guide one that is: said before anything draws.
    (tmp_path / train_diffusion.WEAK_DIR).mkdir()
    copy_weights(diffusion_run, tmp_path / train_diffusion.WEAK_DIR, train_diffusion.WEIGHT_FILES)
    assert_clean_failure(run_script(*diffusion_args(tmp_path, "--mode", "2", "--autoguidance", "2")),
                         "autoguidance needs the same inputs")
    refused = run_script(*diffusion_args(tmp_path, "--mode", "1", "--dry-run", "--csv", tiny_csv, "--autoguidance", "2"))
    assert_clean_failure(refused, "autoguidance needs the same inputs")
    assert "Epoch" not in refused.stdout  # before training, not after it
    # A missing or damaged list of inks is one line, before anything loads or trains.
    record = analyze.read_record(tmp_path / train_diffusion.WEIGHT_FILES[0])
    for damaged in (None, [[0.1, float("inf")]] * 10):
        if damaged is None:
            record.pop("ink_quantiles")
        else:
            record["ink_quantiles"] = damaged
        analyze.record_path(tmp_path / train_diffusion.WEIGHT_FILES[0]).write_text(json.dumps(record))
        for mode in ("1", "2"):
            assert_clean_failure(run_script(*diffusion_args(tmp_path, "--mode", mode, "--dry-run", "--csv", tiny_csv)),
                                 "\"ink_quantiles\" should be 10 rising lists")
    record["config"]["blocks"] = 2
    analyze.record_path(tmp_path / train_diffusion.WEIGHT_FILES[0]).write_text(json.dumps(record))
    assert_clean_failure(run_script(*diffusion_args(tmp_path, "--mode", "1", "--blocks", "1")),
                         "built with blocks=2")
    assert_clean_failure(run_script(*diffusion_args(tmp_path, "--mode", "0", "--blocks", "0")),
                         "--blocks must be at least 1")


def test_diffusion_resume_continues_the_epoch_count(tmp_path, diffusion_run, tiny_csv):
    copy_weights(diffusion_run, tmp_path, train_diffusion.WEIGHT_FILES)
    result = run_script(*diffusion_args(tmp_path, "--mode", "1", "--dry-run", "--csv", tiny_csv,
                                        "--num-per-digit", "1", "--digit", "4"))
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/2" in result.stdout
    record = json.loads(analyze.record_path(tmp_path / "diffusion_model.weights.h5").read_text())
    assert record["training"]["epochs"] == 2 and len(record["training"]["commands"]) == 2


def test_diffusion_generation_is_reproducible_with_seed(tmp_path, diffusion_run):
    archives = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        result = run_script(*diffusion_args(diffusion_run, "--mode", "2", "--digit", "3", "--steps", "3",
                                            "--num-per-digit", "4", "--seed", str(seed),
                                            "--output", tmp_path / f"{name}.npz"))
        assert result.returncode == 0, result.stderr
        with np.load(tmp_path / f"{name}.npz") as archive:
            archives.append(archive["images"])
            assert list(archive["labels"]) == [3] * 4
    np.testing.assert_array_equal(archives[0], archives[1])
    assert not np.array_equal(archives[0], archives[2])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' save_weights under NumPy 2
def test_diffusion_draws_the_average_file_its_record_vouches_for(tmp_path, diffusion_run):
    checkpoint, average_file = (tmp_path / name for name in train_diffusion.WEIGHT_FILES)
    copy_weights(diffusion_run, tmp_path, train_diffusion.WEIGHT_FILES)
    run = analyze.start_or_resume(2, tmp_path, train_diffusion.WEIGHT_FILES, train_diffusion.MODEL_CONFIG,
                                  train_diffusion.BUILDER, train_diffusion.MAKE_COMMAND)
    trainer = train_diffusion.load_diffusion(run)
    average, raw = trainer.ema_network.get_weights(), trainer.network.get_weights()
    assert not all(np.array_equal(a, r) for a, r in zip(average, raw))

    def drawn_weights():
        return train_diffusion.load_sampler(tmp_path, "float32").network.get_weights()

    assert all(np.array_equal(got, want) for got, want in zip(drawn_weights(), average))
    # The file is what draws: other weights in it, vouched for by the record, are drawn.
    trainer.network.save_weights(average_file)
    record = json.loads(analyze.record_path(checkpoint).read_text())
    record["ema_sha256"] = analyze.file_sha256(average_file)
    analyze.record_path(checkpoint).write_text(json.dumps(record))
    assert all(np.array_equal(got, want) for got, want in zip(drawn_weights(), raw))
    # A file the record does not vouch for (another run's, junk), or none (runs saved before
    # there was one): the average comes out of the checkpoint.
    for stale in (b"not weights", None):
        average_file.unlink()
        if stale:
            average_file.write_bytes(stale)
        assert all(np.array_equal(got, want) for got, want in zip(drawn_weights(), average))


@pytest.mark.parametrize("answers, expect_code, expect_text", [
    ("2\n", 0, "generated"),
    ("x\n7\n2\n", 0, "'x' is not a mode"),
    ("", 2, "no answer at the mode prompt"),
])
def test_diffusion_prompt(diffusion_run, answers, expect_code, expect_text):
    result = run_script(*diffusion_args(diffusion_run, "--num-per-digit", "1", "--steps", "2"), stdin=answers)
    assert result.returncode == expect_code, result.stderr
    assert expect_text in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    if expect_code == 2:
        assert_clean_failure(result, "pass --mode")


@pytest.mark.parametrize("script", ["train_diffusion.py", "train_gan.py"])
def test_generator_scripts_reject_bad_flags_alike(script):
    for flags, message in ((["--digit", "12"], "--digit must be 0-9"),
                           (["--num-per-digit", "0"], "--num-per-digit must be at least 1"),
                           (["--mode", "5"], "invalid choice"), (["--output", "x.txt"], "must end in .npz"),
                           (["--generate", "--from-scratch"], "not allowed with"),
                           (["--gen"], "unrecognized arguments"),  # no prefix matching
                           (["--stop-after", "0"], "--stop-after must be 1 to --epochs"),
                           (["--epochs", "3", "--stop-after", "4"], "--stop-after must be 1 to --epochs (3), got 4")):
        assert_clean_failure(run_script(script, *flags), message)


def test_diffusion_rejects_bad_sampler_flags():
    for flags, message in ((["--steps", "0"], "--steps must be at least 1"),
                           (["--paper-level", "256"], "--paper-level must be 0-255"),
                           (["--spacing", "cubic"], "invalid choice"),
                           (["--guidance-interval", "5", "1"], "--guidance-interval needs"),
                           (["--eta", "1.5"], "--eta must be between 0 and 1"),
                           (["--eta-interval", "0.3", "1.2"], "give --eta above 0 too"),
                           (["--autoguidance", "-1"], "--autoguidance must be 0 or more"),
                           (["--autoguidance-interval", "2", "2"], "--autoguidance-interval needs"),
                           (["--widths", "64", "100"], "--widths must be multiples of 8")):
        assert_clean_failure(run_script("train_diffusion.py", "--mode", "2", *flags), message)


@pytest.mark.parametrize("script, mode_flag", [("train_diffusion.py", "--mode=2"), ("train_gan.py", "--generate")])
def test_missing_junk_and_mismatched_weights_fail_in_one_line(tmp_path, script, mode_flag, diffusion_run, gan_run):
    module, run_dir = {"train_diffusion.py": (train_diffusion, diffusion_run),
                       "train_gan.py": (train_gan, gan_run)}[script]
    args = (script, mode_flag, "--num-per-digit", "1", "--figures-dir", tmp_path, "--weights-dir")
    assert_clean_failure(run_script(*args, tmp_path), "not found", module.MAKE_COMMAND)

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / module.WEIGHT_FILES[0]).write_text("not weights")
    assert_clean_failure(run_script(*args, junk), "does not fit", module.MAKE_COMMAND)

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    copy_weights(run_dir, wrong, module.WEIGHT_FILES)
    record_file = analyze.record_path(wrong / module.WEIGHT_FILES[0])
    record = json.loads(record_file.read_text())
    key = "widths" if module is train_diffusion else "width"
    record["config"][key] = [32, 64] if key == "widths" else 32  # builds, but not these weights
    record_file.write_text(json.dumps(record))
    result = run_script(*args, wrong)
    sampled = module.WEIGHT_FILES[-1]  # both draw with their moving average, the last file
    assert_clean_failure(result, "does not fit", sampled, module.MAKE_COMMAND)
    assert "Warning" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr

    record["config"]["colour"] = "blue"
    record_file.write_text(json.dumps(record))
    assert_clean_failure(run_script(*args, wrong), "unknown config key 'colour'")
    del record["config"]["colour"]
    record["config"][key] = "wide"
    record_file.write_text(json.dumps(record))
    assert_clean_failure(run_script(*args, wrong), f"config '{key}' should be")


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, tiny_csv):
    out = tmp_path_factory.mktemp("gan")
    result = run_script("train_gan.py", "--dry-run", "--csv", tiny_csv, "--weights-dir", out,
                        "--figures-dir", out, "--num-per-digit", "3", "--output", out / "all.npz")
    assert result.returncode == 0, result.stderr
    assert "d_acc_real" in result.stdout and "d_acc_fake" in result.stdout  # the health line
    return out


def test_gan_dry_run_trains_saves_and_generates(gan_run):
    assert all((gan_run / name).exists() for name in train_gan.WEIGHT_FILES)
    assert (gan_run / "gan_progress" / "epoch_001.png").exists()
    assert all((gan_run / f"gan_generated_{d}.png").exists() for d in range(10))
    with np.load(gan_run / "all.npz") as archive:
        assert archive["images"].shape == (30, 28, 28) and archive["images"].dtype == np.uint8
        assert sorted(set(archive["labels"])) == list(range(10))


def test_gan_resume_and_reproducible_generation(tmp_path, gan_run, tiny_csv):
    copy_weights(gan_run, tmp_path, train_gan.WEIGHT_FILES)
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


def test_a_dry_run_never_writes_over_weights_a_real_run_made(tmp_path, gan_run, tiny_csv):
    copy_weights(gan_run, tmp_path, train_gan.WEIGHT_FILES)
    record_file = analyze.record_path(tmp_path / train_gan.WEIGHT_FILES[0])
    record = json.loads(record_file.read_text())
    assert record["training"].pop("dry_run") is True  # what lets the resume test above write in place
    record_file.write_text(json.dumps(record))  # now they are a real run's
    def weights_and_record():  # the pictures go to --figures-dir, here the same folder, as asked
        return {path.name: path.read_bytes() for path in tmp_path.glob("*") if path.suffix in (".h5", ".json")}

    before = weights_and_record()
    for mode in ("--mode", "1"), ("--from-scratch",):
        result = run_script("train_gan.py", *mode, "--dry-run", "--csv", tiny_csv, "--weights-dir", tmp_path,
                            "--figures-dir", tmp_path, "--num-per-digit", "1")
        assert result.returncode == 0, result.stderr
        assert "gan_generator.weights.h5 was made by a real run" in result.stdout, result.stdout
    assert weights_and_record() == before and len(before) == len(train_gan.WEIGHT_FILES) + 1


@pytest.mark.parametrize("damage, message", [("{", "is not a readable JSON object"),
                                             ('{"config": {}, "training": 3}', '"training" should be an object')])
def test_a_damaged_record_is_one_line_not_a_guess_at_the_network(tmp_path, gan_run, damage, message):
    copy_weights(gan_run, tmp_path, train_gan.WEIGHT_FILES)
    analyze.record_path(tmp_path / train_gan.WEIGHT_FILES[0]).write_text(damage)
    result = run_script("train_gan.py", "--generate", "--weights-dir", tmp_path, "--figures-dir", tmp_path)
    assert_clean_failure(result, "gan_generator.json", message)


@pytest.mark.parametrize("conditioning, class_weight", [("projection", 0.0), ("projection", 0.2), ("acgan", 1.0)])
def test_gan_step_moves_the_average_generator_by_the_warmed_up_decay(conditioning, class_weight):
    gan = train_gan.make_gan({"noise_dim": 8, "width": 8, "conditioning": conditioning, "class_weight": class_weight})
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


def test_stop_after_ends_a_run_early_and_the_same_command_without_it_trains_on(capsys):
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    batches = tf.data.Dataset.from_tensor_slices((np.ones((4, 1)), np.ones((4, 1)))).batch(2)
    record, saved = {}, []

    def train(stop_after):
        return analyze.fit_resumably(model, batches, record, 3, stop_after, {}, saved.append)

    assert train(stop_after=1) and saved == [1] and record["training"]["epochs"] == 1
    assert not train(stop_after=1) and "larger --stop-after" in capsys.readouterr().out
    assert train(stop_after=None) and saved == [1, 2, 3] and record["training"]["epochs"] == 3
    assert len(record["training"]["history"]) == 3


def test_moving_average_decay_reaches_its_setting_once_warmed_up():
    import keras

    network, average = (keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
                        for _ in range(2))
    network.set_weights([np.ones((1, 1), np.float32)])
    average.set_weights([np.zeros((1, 1), np.float32)])
    analyze.update_moving_average(network, average, 0.999, 100_000)
    np.testing.assert_allclose(average.get_weights()[0], 0.001, rtol=1e-4)


def test_projection_discriminator_judges_the_digit_it_is_told():
    import keras

    keras.utils.set_random_seed(0)
    discriminator = train_gan.build_discriminator(8, "projection")
    images = np.random.default_rng(0).uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
    as_three = discriminator([images, np.full(3, 3, np.int32)], training=False)
    as_seven = discriminator([images, np.full(3, 7, np.int32)], training=False)
    assert as_three.shape == (3, 1) and not np.allclose(as_three, as_seven)


def test_generator_is_rewarded_by_the_digit_head_as_class_weight_says():
    import keras

    def first_step_losses(class_weight):
        keras.utils.set_random_seed(0)  # the same networks, digits and noise for both weights
        gan = train_gan.make_gan({"noise_dim": 8, "width": 8, "conditioning": "projection",
                                  "class_weight": class_weight})
        gan.compile()
        realness, digits = gan.discriminator.outputs
        assert realness.shape[-1] == 1 and digits.shape[-1] == 10
        images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
        return {k: float(v) for k, v in gan.train_step((images, np.arange(4))).items()}

    light, heavy = first_step_losses(0.2), first_step_losses(2.0)
    assert light["d_loss"] == pytest.approx(heavy["d_loss"])  # D learns its head at weight 1 either way
    assert heavy["g_loss"] > light["g_loss"] + 1.0  # 1.8 x a ten-way cross-entropy of about log(10)
    with pytest.raises(ValueError, match="class_weight"):
        train_gan.build_discriminator(8, "acgan", class_weight=0.0)


def test_gan_continues_weights_from_before_conditioning_as_acgan(tmp_path, gan_run, tiny_csv):
    copy_weights(gan_run, tmp_path, train_gan.WEIGHT_FILES[:2])
    record_file = analyze.record_path(tmp_path / train_gan.WEIGHT_FILES[0])
    record = json.loads(record_file.read_text())
    assert record["config"]["conditioning"] == "projection"  # what a new run records
    # A record without "conditioning" means AC-GAN, which cannot do without its digit head:
    # one line naming the record.
    del record["config"]["conditioning"]
    record["config"]["class_weight"] = 0.0
    record_file.write_text(json.dumps(record))
    result = run_script("train_gan.py", "--dry-run", "--csv", tiny_csv, "--weights-dir", tmp_path,
                        "--figures-dir", tmp_path, "--num-per-digit", "1", "--digit", "0")
    assert_clean_failure(result, "gan_generator.json", "class_weight")
    # AC-GAN weights whose record predates both keys (as the first shipped GAN's did) continue
    # as AC-GAN with its full digit reward, and the record says so from then on.
    legacy = train_gan.make_gan({"noise_dim": 8, "width": 8, "conditioning": "acgan", "class_weight": 1.0})
    analyze.save_weights_atomic(legacy.generator, tmp_path / "gan_generator.weights.h5")
    analyze.save_weights_atomic(legacy.discriminator, tmp_path / "gan_discriminator.weights.h5")
    (tmp_path / "gan_generator_ema.weights.h5").unlink(missing_ok=True)
    # (Marked as a dry run's, so the dry run below may write its record in place.)
    record_file.write_text(json.dumps({"builder": train_gan.BUILDER, "config": {"noise_dim": 8, "width": 8},
                                       "training": {"epochs": 1, "dry_run": True}}))
    result = run_script("train_gan.py", "--dry-run", "--csv", tiny_csv, "--weights-dir", tmp_path,
                        "--figures-dir", tmp_path, "--num-per-digit", "1", "--digit", "0")
    assert result.returncode == 0, result.stderr
    config = json.loads(record_file.read_text())["config"]
    assert config["conditioning"] == "acgan" and config["class_weight"] == 1.0


def test_gan_draws_with_the_average_generator_and_falls_back_for_old_weights(tmp_path, gan_run):
    copy_weights(gan_run, tmp_path, train_gan.WEIGHT_FILES)
    average = train_gan.build_generator(**train_gan.MODEL_CONFIG)
    average.load_weights(tmp_path / "gan_generator_ema.weights.h5")
    sampler = train_gan.load_sampler(tmp_path)
    for got, want in zip(sampler.network.get_weights(), average.get_weights()):
        np.testing.assert_array_equal(got, want)
    # Weights trained before the moving average existed have no such file: the generator draws.
    (tmp_path / "gan_generator_ema.weights.h5").unlink()
    generator = train_gan.build_generator(**train_gan.MODEL_CONFIG)
    generator.load_weights(tmp_path / "gan_generator.weights.h5")
    sampler = train_gan.load_sampler(tmp_path)
    for got, want in zip(sampler.network.get_weights(), generator.get_weights()):
        np.testing.assert_array_equal(got, want)


# -- the contract (analyze.GENERATOR_SCRIPTS) -------------------------------------------------

@pytest.mark.parametrize("module", [train_diffusion, train_gan])
def test_generator_scripts_keep_the_contract(module, diffusion_run, gan_run):
    run_dir = diffusion_run if module is train_diffusion else gan_run
    assert module in analyze.generator_modules()
    assert isinstance(module.MODEL_NAME, str) and module.WEIGHT_FILES[0].endswith(".weights.h5")
    assert module.MAKE_COMMAND.startswith(f"python {module.__name__}.py")
    sampler = module.load_sampler(run_dir)
    labels = analyze.requested_labels(7, 3)
    digits = sampler(labels, 11)
    assert digits.shape == (3, 28, 28) and digits.dtype == np.uint8
    np.testing.assert_array_equal(digits, sampler(labels, 11))
    np.testing.assert_array_equal(digits, sampler(labels, 11, progress=True))  # a bar changes no digit
    same, steps = sampler.with_steps(labels, 11)
    np.testing.assert_array_equal(same, digits)
    assert steps.dtype == np.uint8 and steps.shape[1:] == (3, 28, 28) and len(steps) >= 1
    np.testing.assert_array_equal(steps[-1], digits)  # the last step is the answer
    with pytest.raises(analyze.DataError, match="not found"):
        module.load_sampler(run_dir / "nowhere")


@pytest.mark.parametrize("module", [train_diffusion, train_gan])
def test_sampler_loads_from_a_relative_weights_dir(monkeypatch, module, diffusion_run, gan_run):
    # `--weights-dir weights/in_progress/...` is how runs in progress are scored; the GAN once
    # joined that folder onto itself and failed with "not found".
    run_dir = diffusion_run if module is train_diffusion else gan_run
    labels = analyze.requested_labels(3, 2)
    monkeypatch.chdir(run_dir.parent)
    np.testing.assert_array_equal(module.load_sampler(Path(run_dir.name), SAME_ROUNDING)(labels, 5),
                                  module.load_sampler(run_dir, SAME_ROUNDING)(labels, 5))


@pytest.mark.parametrize("module", [train_diffusion, train_gan])
def test_sampler_draws_what_the_command_line_draws(tmp_path, module, diffusion_run, gan_run):
    run_dir = diffusion_run if module is train_diffusion else gan_run
    flags = ["--mode", "2", "--digit", "5", "--num-per-digit", "3", "--seed", "9", "--weights-dir", run_dir,
             "--figures-dir", tmp_path, "--output", tmp_path / "cli.npz", "--precision", SAME_ROUNDING]
    result = run_script(f"{module.__name__}.py", *flags)
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "cli.npz") as archive:
        np.testing.assert_array_equal(archive["images"],
                                      module.load_sampler(run_dir, SAME_ROUNDING)(analyze.requested_labels(5, 3), 9))


# -- Precision (analyze.resolve_precision, analyze.network_in_precision) ---------------------

def test_native_bfloat16_reads_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert analyze.native_bfloat16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert not analyze.native_bfloat16(cpuinfo)
    assert not analyze.native_bfloat16(tmp_path / "no-such-file")  # not Linux: float32


def test_cpu_summary_tells_apart_machines_of_one_model_name(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\ncpu family\t: 26\nmodel name\t: AMD EPYC\nflags\t\t: avx2 avx512_bf16\n"
                       "processor\t: 1\ncpu family\t: 26\nmodel name\t: AMD EPYC\n")
    assert "(AMD EPYC, family 26, bfloat16 in hardware)" in analyze.cpu_summary(cpuinfo)
    cpuinfo.write_text("processor\t: 0\ncpu family\t: 25\nmodel name\t: AMD EPYC\nflags\t\t: avx2\n")
    assert "(AMD EPYC, family 25, no bfloat16 in hardware)" in analyze.cpu_summary(cpuinfo)
    assert "no bfloat16 in hardware" in analyze.cpu_summary(tmp_path / "no-such-file")  # not Linux


def test_auto_precision_follows_the_cpu(monkeypatch):
    network = object()
    monkeypatch.setattr(analyze, "native_bfloat16", lambda: False)
    assert analyze.resolve_precision() == "float32" and analyze.network_in_precision(network) is network
    monkeypatch.setattr(analyze, "native_bfloat16", lambda: True)
    assert analyze.resolve_precision() == "bfloat16"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # then bfloat16 would be emulated: slower
    assert analyze.resolve_precision() == "float32"
    assert analyze.network_in_precision(network, "float32") is network
    with pytest.raises(analyze.DataError, match="unknown precision 'float16'"):
        analyze.network_in_precision(network, "float16")


def test_bfloat16_asked_for_on_a_cpu_without_it_says_once_that_it_is_emulated(monkeypatch, capsys):
    analyze.warn_emulated_bfloat16.cache_clear()
    monkeypatch.setattr(analyze, "native_bfloat16", lambda: False)
    assert analyze.resolve_precision("bfloat16") == "bfloat16"
    assert analyze.resolve_precision("bfloat16") == "bfloat16"
    assert capsys.readouterr().err.count("bfloat16 is emulated here") == 1
    analyze.warn_emulated_bfloat16.cache_clear()
    monkeypatch.setattr(analyze, "native_bfloat16", lambda: True)
    assert analyze.resolve_precision("bfloat16") == "bfloat16"
    assert "emulated" not in capsys.readouterr().err


@pytest.mark.parametrize("module", [train_diffusion, train_gan])
def test_bfloat16_sampler_draws_nearly_the_float32_digits(module, diffusion_run, gan_run):
    run_dir = diffusion_run if module is train_diffusion else gan_run
    labels = analyze.requested_labels(None, 3)
    exact, fast = module.load_sampler(run_dir, "float32"), module.load_sampler(run_dir, "bfloat16")
    assert {layer.compute_dtype for layer in exact.network.layers} == {"float32"}
    assert "bfloat16" in {layer.compute_dtype for layer in fast.network.layers}
    for got, want in zip(fast.network.get_weights(), exact.network.get_weights()):
        np.testing.assert_array_equal(got, want)  # the same float32 weights, only computed in bfloat16
    difference = np.abs(fast(labels, 4).astype(int) - exact(labels, 4).astype(int))
    assert difference.mean() < 2.0, difference.mean()


def test_generator_scripts_say_which_precision_they_drew_in(tmp_path, gan_run):
    result = run_script("train_gan.py", "--generate", "--precision", "float32", "--num-per-digit", "1",
                        "--weights-dir", gan_run, "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "digits/s, float32)" in result.stdout
    assert_clean_failure(run_script("train_gan.py", "--generate", "--precision", "float16"), "invalid choice")


# -- The diffusion sampler against stand-in networks ------------------------------------------

def oracle_v(x, angle, clean):
    """The exact v for a noisy x whose clean digit is `clean`: v = (cos x - clean) / sin."""
    c, s = np.cos(angle)[:, None, None, None], np.sin(angle)[:, None, None, None]
    return ((c * x - clean) / s).astype(np.float32)


def named_inputs(*extra):
    """What a stand-in shows of a Keras model's inputs: their names (Sampler reads which it takes)."""
    return [SimpleNamespace(name=name) for name in ("noisy", "angle", "label", *extra)]


class StandIn:
    """A 'network' that knows the clean digit: one for labelled calls, another for the null label.
    A self-conditioned one takes a fourth input, the previous estimate, and logs it."""

    def __init__(self, conditional_clean, unconditional_clean, self_conditioned=False):
        self.conditional, self.unconditional = conditional_clean, unconditional_clean
        self.inputs = named_inputs(*["estimate"] * self_conditioned)  # all the Sampler reads of a Keras model
        self.calls, self.estimates = [], []

    def __call__(self, inputs, training=False):
        assert len(inputs) == len(self.inputs)
        x, angle, labels, *estimate = (np.asarray(t) for t in inputs)
        self.estimates.extend(estimate)
        null = labels == train_diffusion.NULL_LABEL
        copies = len(x) // len(self.conditional)  # 2 when guided: conditional rows, then unconditional
        self.calls.append(copies)
        assert not null[:len(self.conditional)].any() and null[len(self.conditional):].all()
        clean = np.where(null[:, None, None, None], np.concatenate([self.unconditional] * copies),
                         np.concatenate([self.conditional] * copies))
        return oracle_v(x, angle, clean)


def signed(digits):
    return np.asarray(analyze.to_signed_unit(digits))


def close(a, b):
    return np.abs(a.astype(int) - b.astype(int)).max() <= 1


# The defaults blank faint pixels and guide only some steps; these tests pin what they test.
EXACT = {"paper_level": 0, "guidance_interval": (0.0, np.inf)}


@pytest.mark.parametrize("solver", train_diffusion.SOLVERS)
@pytest.mark.parametrize("spacing", train_diffusion.SPACINGS)
def test_sampler_with_an_exact_network_recovers_the_clean_digit(mnist, solver, spacing):
    digits = mnist["x_test"][:4]
    sampler = train_diffusion.Sampler(StandIn(signed(digits), signed(digits)), compiled=False)
    for steps in (1, 5, 20):
        out, estimates = sampler.with_steps(np.array([7, 2, 1, 0], np.int32), seed=3, steps=steps, solver=solver,
                                            spacing=spacing, **EXACT)
        assert close(out, digits), steps
        assert estimates.shape == (steps, 4, 28, 28)


def test_self_conditioned_network_is_shown_the_previous_estimate(mnist):
    digits = mnist["x_test"][:2]
    network = StandIn(signed(digits), signed(digits), self_conditioned=True)
    sampler = train_diffusion.Sampler(network, compiled=False)
    labels = np.array([7, 2], np.int32)
    assert close(sampler(labels, seed=1, steps=4, guidance=1.0, **EXACT), digits)
    assert len(network.estimates) == 4
    assert not network.estimates[0].any()  # the first step has no estimate yet
    for shown in network.estimates[1:]:  # then the exact network's own, the clean digit
        np.testing.assert_allclose(shown, signed(digits), atol=1e-4)
    # A guided step shows the same estimate to the conditional and the unconditional pass.
    network.estimates.clear()
    sampler(labels, seed=1, steps=2, guidance=2.0, **EXACT)
    second = network.estimates[1]
    assert len(second) == 4
    np.testing.assert_array_equal(second[:2], second[2:])


def test_the_shipped_diffusion_record_builds_the_scale_shift_network():
    record = analyze.read_record(analyze.WEIGHTS_DIR / train_diffusion.WEIGHT_FILES[0])
    assert analyze.checked_config(record, train_diffusion.MODEL_CONFIG, Path("w.weights.h5"), "make",
                                  train_diffusion.LEGACY_CONFIG) == train_diffusion.MODEL_CONFIG
    # Figures measured before autoguidance existed were drawn without it.
    recorded = {"autoguidance": 1.0, "autoguidance_interval": list(train_diffusion.AUTOGUIDANCE_INTERVAL),
                **record["metrics"]["sampler"]}
    assert recorded == {**train_diffusion.SAMPLER_DEFAULTS,
                        "guidance_interval": list(train_diffusion.GUIDANCE_INTERVAL),
                        "autoguidance_interval": list(train_diffusion.AUTOGUIDANCE_INTERVAL),
                        "eta_interval": train_diffusion.ETA_INTERVAL}
    assert record["ema_sha256"] == analyze.file_sha256(analyze.WEIGHTS_DIR / train_diffusion.WEIGHT_FILES[1])


def test_the_shipped_weak_network_can_guide_the_shipped_network():
    weak_dir = analyze.WEIGHTS_DIR / train_diffusion.WEAK_DIR
    record = analyze.read_record(weak_dir / train_diffusion.WEIGHT_FILES[0])
    # Made as WEAK_RECIPE says, and vouched for by its record.
    recipe = train_diffusion.parse_args(["--mode", "0", *train_diffusion.WEAK_RECIPE.split()])
    assert record["training"]["epochs"] == recipe.stop_after
    assert record["training"]["learning_rate"]["over_epochs"] == recipe.epochs
    assert record["training"]["loss_weighting"] == (recipe.loss_weighting or train_diffusion.LOSS_WEIGHTING)
    assert record["ema_sha256"] == analyze.file_sha256(weak_dir / train_diffusion.WEIGHT_FILES[1])
    shipped = train_diffusion.load_sampler(precision=SAME_ROUNDING)  # the defaults autoguide: it loads
    assert shipped.weak_network is not None and shipped.defaults == train_diffusion.SAMPLER_DEFAULTS
    assert train_diffusion.input_names(shipped.weak_network) == train_diffusion.input_names(shipped.network)


def test_unet_options_change_its_inputs_and_refuse_unknown_conditioning():
    import keras

    plain, self_conditioned = (train_diffusion.build_unet((8, 16), 16, self_condition=flag) for flag in (False, True))
    assert [t.name for t in plain.inputs] == ["noisy", "angle", "label"]
    assert [t.name for t in self_conditioned.inputs] == ["noisy", "angle", "label", "estimate"]
    both = train_diffusion.build_unet((8, 16), 16, self_condition=True, ink=True)
    assert [t.name for t in both.inputs] == ["noisy", "angle", "label", "ink", "estimate"]
    assert train_diffusion.takes_input(both, "ink") and not train_diffusion.takes_input(self_conditioned, "ink")
    shift, scale_shift = (train_diffusion.build_unet((8, 16), 16, conditioning=c) for c in train_diffusion.CONDITIONINGS)
    assert scale_shift.count_params() > shift.count_params()  # a scale as well as a shift per channel
    attending = train_diffusion.build_unet((8, 16), 16, attention=True)
    assert any(isinstance(layer, keras.layers.MultiHeadAttention) for layer in attending.layers)
    assert not any(isinstance(layer, keras.layers.MultiHeadAttention) for layer in shift.layers)
    deeper = train_diffusion.build_unet((8, 16), 16, blocks=2)
    convolutions = [sum(isinstance(layer, keras.layers.Conv2D) for layer in network.layers)
                    for network in (scale_shift, deeper)]
    # Two 3x3 convolutions a block; a second block at both resolutions, down and up, adds four blocks.
    assert convolutions[1] - convolutions[0] == 4 * 2
    with pytest.raises(analyze.DataError, match="unknown conditioning"):
        train_diffusion.build_unet(conditioning="film")
    with pytest.raises(analyze.DataError, match="blocks must be"):
        train_diffusion.build_unet(blocks=0)


def test_diffusion_records_from_before_the_options_build_the_network_they_were_trained_on():
    # The config of the shift network shipped until 2026-12-01, saved before the options existed.
    shipped = {"config": {"widths": [64, 128], "embedding_dim": 128, "patch": 2}}
    # Defaults that differ from the legacy values everywhere, so each key must come from LEGACY_CONFIG.
    every_option = {**train_diffusion.MODEL_CONFIG, "conditioning": "scale_shift", "self_condition": True,
                    "attention": True, "blocks": 2, "ink": True}

    def config(record):
        return analyze.checked_config(record, every_option, Path("w.weights.h5"), "make",
                                      train_diffusion.LEGACY_CONFIG)
    assert config(shipped)["conditioning"] == "shift" and config(shipped)["self_condition"] is False
    assert config(shipped)["attention"] is False and config(shipped)["blocks"] == 1 and config(shipped)["ink"] is False
    # A record from before "attention" (as the scale-shift run started on 2026-12-01) builds without it.
    newer = {"config": {**shipped["config"], "conditioning": "scale_shift", "self_condition": True}}
    assert config(newer)["conditioning"] == "scale_shift" and config(newer)["self_condition"] is True
    assert config(newer)["attention"] is False


# Every option at once, so two trainings cover them all (tracing is most of a test's time).
ALL_OPTIONS = {"conditioning": "scale_shift", "self_condition": True, "attention": True, "blocks": 2, "ink": True}


@pytest.mark.parametrize("config, precision, loss_weighting", [(ALL_OPTIONS, "float32", "min-snr"),
                                                               (ALL_OPTIONS, "bfloat16", "v")])
def test_unet_options_train(mnist, config, precision, loss_weighting):
    import keras

    keras.utils.set_random_seed(0)
    model = train_diffusion.make_diffusion({"widths": [8, 16], "embedding_dim": 16, "patch": 2, **config},
                                           precision=precision, loss_weighting=loss_weighting)
    assert precision in {layer.compute_dtype for layer in model.network.layers}
    before = [w.copy() for w in model.network.get_weights()]
    history = model.fit(mnist["x_train"][:64], mnist["y_train"][:64], batch_size=16, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    if loss_weighting == "min-snr":  # every weight is under 1, so the weighted loss is the smaller
        assert (np.array(history.history["loss"]) < np.array(history.history["v_loss"])).all()
    else:
        assert "v_loss" not in history.history
    after = model.network.get_weights()
    assert {w.dtype for w in after} == {np.dtype("float32")}  # mixed precision: float32 weights
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.ema_network.get_weights()))


def test_min_snr_weights_cap_the_least_noisy_levels():
    """Min-SNR-5 in v terms: min(SNR, 5) / (SNR + 1), with SNR = cot^2(angle): cos^2(angle) where
    SNR <= 5, and 5 sin^2(angle) at the low-noise end, where the plain v loss weighs most."""
    angles = np.array([0.02, 0.1, 0.3, np.arctan(1 / np.sqrt(5)), 0.8, 1.5], np.float32)
    weights = np.asarray(train_diffusion.loss_weights(angles, "min-snr"))
    expected = np.where(1 / np.tan(angles) ** 2 > 5, 5 * np.sin(angles) ** 2, np.cos(angles) ** 2)
    np.testing.assert_allclose(weights, expected, rtol=1e-4)
    assert (weights <= 5 / 6 + 1e-6).all() and weights.argmax() == 3  # largest where SNR = 5
    np.testing.assert_array_equal(np.asarray(train_diffusion.loss_weights(angles, "v")), 1.0)


def test_the_diffusion_model_trains_in_bfloat16_only_when_asked(monkeypatch):
    monkeypatch.setattr(analyze, "native_bfloat16", lambda: True)  # where auto draws in bfloat16
    assert analyze.resolve_precision("auto") == "bfloat16"
    assert train_diffusion.training_precision("auto") == "float32"
    assert train_diffusion.training_precision("bfloat16") == "bfloat16"


def test_the_record_says_what_each_stretch_of_training_computed_in():
    history = train_diffusion.precision_history
    assert history({}, "bfloat16") == "bfloat16"  # a fresh run
    assert history({"epochs": 5}, "bfloat16") == "float32, then bfloat16"  # records from before the key
    assert history({"epochs": 5, "precision": "bfloat16"}, "bfloat16") == "bfloat16"
    assert history({"epochs": 9, "precision": "float32, then bfloat16"}, "float32") == \
        "float32, then bfloat16, then float32"


def test_paper_level_blanks_only_the_faintest_pixels(mnist):
    digits = mnist["x_test"][:4].copy()
    digits[:, :3] = 2  # a faint haze along the top edge, where MNIST's paper is blank
    sampler = train_diffusion.Sampler(StandIn(signed(digits), signed(digits)), compiled=False)
    labels = np.array([7, 2, 1, 0], np.int32)
    as_estimated = sampler(labels, seed=3, steps=5, **EXACT)
    assert close(as_estimated, digits) and (as_estimated[:, :3] > 0).any()
    cleaned, steps = sampler.with_steps(labels, seed=3, steps=5, guidance_interval=(0.0, np.inf), paper_level=3)
    assert (cleaned[:, :3] == 0).all()
    ink = as_estimated > 3
    np.testing.assert_array_equal(cleaned[ink], as_estimated[ink])  # the digit itself is untouched
    np.testing.assert_array_equal(steps[-1], cleaned)


def test_sampling_angles_walk_from_noise_to_the_clean_digit():
    min_angle, max_angle = train_diffusion.MIN_ANGLE, train_diffusion.MAX_ANGLE
    even = train_diffusion.sampling_angles(10, "angle")
    np.testing.assert_allclose(even[:3], [max_angle, 0.9 * max_angle, 0.8 * max_angle])
    logsnr = train_diffusion.sampling_angles(10, "logsnr")
    for angles in (even, logsnr):
        assert len(angles) == 11 and angles[-1] == 0 and (np.diff(angles) < 0).all()
        assert angles[:-1].min() >= min_angle - 1e-12
    # Log-SNR spacing: equal ratios of noise to signal, down to the smallest trained noise,
    # where the angle spacing still stands at a tenth of the way.
    ratios = np.diff(np.log(np.tan(logsnr[:-1])))
    np.testing.assert_allclose(ratios, ratios[0])
    np.testing.assert_allclose([logsnr[0], logsnr[-2]], [max_angle - min_angle, min_angle])
    assert even[-2] > 7 * logsnr[-2]
    with pytest.raises(analyze.DataError, match="unknown spacing"):
        train_diffusion.sampling_angles(10, "cubic")


@pytest.mark.parametrize("spacing", train_diffusion.SPACINGS)
def test_solver_coefficients_keep_an_exact_estimate_exact(spacing):
    angles = train_diffusion.sampling_angles(10, spacing)
    for solver in train_diffusion.SOLVERS:
        table = train_diffusion.solver_coefficients(angles, solver)
        a, b, c1, c2, sigma = table.T
        np.testing.assert_allclose(c1 + c2, 1, atol=1e-6)
        # From x = cos x0 + sin z, one step lands on cos' x0 + sin' z, whatever the solver.
        np.testing.assert_allclose(a * np.sin(angles[:-1]), np.sin(angles[1:]), atol=1e-6)
        np.testing.assert_allclose(a * np.cos(angles[:-1]) + b, np.cos(angles[1:]), atol=1e-6)
        assert (sigma == 0).all()
    ddim, dpm = (train_diffusion.solver_coefficients(angles, s) for s in train_diffusion.SOLVERS)
    assert (ddim[:, 3] == 0).all() and (dpm[2:-1, 3] < 0).all()  # DPM-Solver++ uses the previous estimate
    assert dpm[0, 3] == 0 and dpm[-1, 3] == 0                     # ...except first and last
    noisy = train_diffusion.solver_coefficients(angles, "ddim", eta=1.0)
    assert (noisy[:-1, 4] > 0).all() and noisy[-1, 4] == 0
    # eta per step: a step without fresh noise is the deterministic step, the others unchanged.
    some = np.arange(10) % 2 == 0
    mixed = train_diffusion.solver_coefficients(angles, "dpm++2m", eta=some.astype(float))
    full = train_diffusion.solver_coefficients(angles, "dpm++2m", eta=1.0)
    np.testing.assert_array_equal(mixed[some], full[some])
    np.testing.assert_array_equal(mixed[~some], dpm[~some])


class Echo:
    """A 'network' whose estimate follows its input, so fresh noise shows in what it estimates."""
    inputs = named_inputs()

    def __call__(self, inputs, training=False):
        return 0.5 * inputs[0]


class InkWitness:
    """An ink-conditioned 'network' that logs the labels and ink shares it is shown."""
    inputs = named_inputs("ink")

    def __init__(self):
        self.shown = []

    def __call__(self, inputs, training=False):
        x, angle, labels, inks = (np.asarray(t) for t in inputs)
        self.shown.append((labels, inks))
        return np.zeros_like(x)


def test_an_ink_conditioned_network_is_told_inks_drawn_from_its_digits_range():
    # Digit d inks between d% and d% + 1% of the page.
    quantiles = [[d / 100, d / 100 + 0.005, d / 100 + 0.01] for d in range(10)]
    labels = np.repeat(np.arange(10), 20).astype(np.int32)
    settings = {"steps": 3, "guidance": 2.0, "guidance_interval": (0.0, np.inf), "batch_size": 64}
    network = InkWitness()
    train_diffusion.Sampler(network, quantiles, compiled=False)(labels, 4, **settings)
    assert len(network.shown) == 3 * 4  # 3 steps of 4 batches, all guided
    for batch in range(4):  # a digit keeps its ink through the steps
        steps = network.shown[3 * batch:3 * batch + 3]
        assert all(np.array_equal(steps[0][1], inks) for _, inks in steps)
    told = []
    for shown_labels, inks in network.shown[::3]:
        n = len(inks) // 2  # the conditional copy, then the unconditional one, told the same inks
        np.testing.assert_array_equal(shown_labels[n:], train_diffusion.NULL_LABEL)
        np.testing.assert_array_equal(inks[:n], inks[n:])
        digits = shown_labels[:n]
        assert (inks[:n] >= digits / 100 - 1e-6).all() and (inks[:n] <= digits / 100 + 0.01 + 1e-6).all()
        told.append(inks[:n])
    assert np.unique(np.concatenate(told)).size > 100  # drawn, not one value per digit
    network.shown.clear()  # the same seed tells the same inks
    train_diffusion.Sampler(network, quantiles, compiled=False)(labels, 4, **settings)
    np.testing.assert_array_equal(np.concatenate([inks[:len(inks) // 2] for _, inks in network.shown[::3]]),
                                  np.concatenate(told))
    # Networks told no ink draw no random numbers for it: their digits stay what they were.
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert not train_diffusion.Sampler(Echo(), compiled=False).draw_ink(labels, rng).any()
    assert rng.bit_generator.state == state
    with pytest.raises(analyze.DataError, match="needs ink quantiles"):
        train_diffusion.Sampler(InkWitness(), None, compiled=False)


def test_ink_shares_and_their_quantiles_come_from_the_digits(mnist):
    blank, full = np.zeros((1, 28, 28), np.uint8), np.full((1, 28, 28), 255, np.uint8)
    np.testing.assert_allclose(train_diffusion.ink_share(np.concatenate([blank, full])), [0.0, 1.0])
    images, labels = mnist["x_test"][:2000], mnist["y_test"][:2000]
    quantiles = np.array(train_diffusion.ink_quantiles(images, labels))
    assert quantiles.shape == (10, train_diffusion.INK_QUANTILES)
    assert (np.diff(quantiles, axis=1) >= 0).all()
    ones = images[labels == 1].reshape(-1, 784).mean(1) / 255
    np.testing.assert_allclose(quantiles[1, [0, 50, -1]], np.quantile(ones, [0, 0.5, 1]), atol=1e-6)
    assert quantiles[1, 50] < quantiles[0, 50]  # a one inks less of the page than a zero

    def run(config, record):
        return analyze.Run(2, {**train_diffusion.MODEL_CONFIG, **config}, record, [Path("w.weights.h5")], [])

    assert train_diffusion.recorded_ink_quantiles(run({"ink": True}, {"ink_quantiles": quantiles.tolist()})) \
        == quantiles.tolist()
    assert train_diffusion.recorded_ink_quantiles(run({}, {"ink_quantiles": "not read"})) is None
    table = quantiles.tolist()
    for damaged in (table[:9], quantiles[:, ::-1].tolist(), "thin", [[0.1]] * 10, [[[0.1], [0.2]]] * 10,
                    [[0.1, float("inf")]] * 10, [[-0.1, 0.2]] * 10, [[0.1, 1.5]] * 10, None):
        record = {} if damaged is None else {"ink_quantiles": damaged}
        with pytest.raises(analyze.DataError, match="ink_quantiles"):
            train_diffusion.recorded_ink_quantiles(run({"ink": True}, record))


def test_fresh_noise_only_inside_its_interval():
    """--eta-interval: noise is added only where tan(angle) lies in (LOW, HIGH]; an interval no
    step falls in draws exactly the deterministic digits, and the default adds it everywhere."""
    sampler = train_diffusion.Sampler(Echo(), compiled=False)
    labels = np.array([7, 2, 5], np.int32)
    # batch_size 1: the later batches' starting noise must not depend on noise never added
    settings = {"seed": 1, "steps": 10, "guidance": 1.0, "paper_level": 0, "batch_size": 1}
    deterministic = sampler.with_steps(labels, **settings)[1]
    nowhere = sampler.with_steps(labels, eta=1.0, eta_interval=(50.0, 60.0), **settings)[1]
    np.testing.assert_array_equal(nowhere, deterministic)
    # (0.6, 2.5] holds the 4th-7th of 10 angle-spaced steps (tan 1.96, 1.38, 1.00, 0.73).
    inside = train_diffusion.in_interval(train_diffusion.sampling_angles(10)[:-1], (0.6, 2.5))
    assert inside == [False] * 3 + [True] * 4 + [False] * 3
    band = sampler.with_steps(labels, eta=1.0, eta_interval=(0.6, 2.5), **settings)[1]
    everywhere = sampler.with_steps(labels, eta=1.0, **settings)[1]
    # In the first batch, the estimates up to the first noisy step's are the deterministic ones.
    np.testing.assert_array_equal(band[:4, :1], deterministic[:4, :1])
    assert not np.array_equal(band[4:], deterministic[4:]) and not np.array_equal(band, everywhere)


@pytest.mark.parametrize("spacing", train_diffusion.SPACINGS)
def test_fresh_noise_with_dpm_solver_is_its_sde_form(spacing):
    """eta = 1 with dpm++2m is DPM-Solver++(2M) SDE (Lu et al. 2022, k-diffusion's midpoint
    form), written here in log signal-to-noise steps h rather than angles."""
    angles = train_diffusion.sampling_angles(10, spacing)
    a, b, c1, c2, sigma = train_diffusion.solver_coefficients(angles, "dpm++2m", eta=1.0).T
    s, s_next, c_next = np.sin(angles[:-1]), np.sin(angles[1:]), np.cos(angles[1:])
    log_snr = np.log(np.cos(angles[:-1]) / s)
    for i in range(len(angles) - 2):  # the last step lands on the clean estimate
        h = np.log(c_next[i] / s_next[i]) - log_snr[i]
        np.testing.assert_allclose(a[i], s_next[i] / s[i] * np.exp(-h), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b[i], c_next[i] * -np.expm1(-2 * h), rtol=1e-5)
        np.testing.assert_allclose(sigma[i], s_next[i] * np.sqrt(-np.expm1(-2 * h)), rtol=1e-5)
        # x0 + (x0 - x0_prev) / (2r): the midpoint correction, r = previous h / this h
        correction = 0.0 if i == 0 else (log_snr[i] - log_snr[i - 1]) / h
        np.testing.assert_allclose(-c2[i], 0.0 if i == 0 else 1 / (2 * correction), rtol=1e-5)
    assert a[-1] == 0 and b[-1] == 1 and sigma[-1] == 0


def test_guidance_zero_is_unconditional_and_one_is_conditional(mnist):
    conditional, unconditional = mnist["x_test"][:2], mnist["x_test"][2:4]
    network = StandIn(signed(conditional), signed(unconditional))
    sampler = train_diffusion.Sampler(network, compiled=False)
    labels = np.array([7, 2], np.int32)
    for guidance, expected in ((1.0, conditional), (0.0, unconditional)):
        assert close(sampler(labels, seed=1, steps=10, guidance=guidance, **EXACT), expected), guidance
    # In between, the guided estimate lies between the two answers.
    halfway = sampler(labels, seed=1, steps=1, guidance=0.5, **EXACT).astype(int)
    low, high = np.minimum(conditional, unconditional), np.maximum(conditional, unconditional)
    assert ((halfway >= low.astype(int) - 1) & (halfway <= high.astype(int) + 1)).all()
    # Guidance 1 needs no unconditional pass; outside the interval, guidance is not applied.
    network.calls.clear()
    sampler(labels, seed=1, steps=4, guidance=1.0, **EXACT)
    assert network.calls == [1] * 4
    network.calls.clear()
    out = sampler(labels, seed=1, steps=4, guidance=0.0, guidance_interval=(100.0, np.inf), paper_level=0)
    assert network.calls == [2, 1, 1, 1]  # only the first step (tan(90°) = inf) is in the interval
    assert close(out, conditional)  # the last estimate was unguided
    # The defaults guide the 4th and 5th of 10 steps: 12 passes per digit, as README says.
    network.calls.clear()
    sampler(labels, seed=1)
    assert network.calls == [1, 1, 1, 2, 2, 1, 1, 1, 1, 1]


def test_autoguidance_steers_away_from_the_weak_network(mnist):
    good_digits, weak_digits = mnist["x_test"][:2], mnist["x_test"][2:4]
    good = StandIn(signed(good_digits), signed(good_digits))
    weak = StandIn(signed(weak_digits), signed(weak_digits))
    sampler = train_diffusion.Sampler(good, compiled=False, weak_network=weak)
    labels = np.array([7, 2], np.int32)
    everywhere = {**EXACT, "guidance": 1.0, "autoguidance_interval": (0.0, np.inf)}
    # One step from pure noise lands on the estimate: good + (w - 1)(good - weak), within the paper's range.
    for w in (1.0, 1.5, 3.0):
        expected = np.clip(signed(good_digits) + (w - 1) * (signed(good_digits) - signed(weak_digits)), -1, 1)
        out = sampler(labels, seed=1, steps=1, autoguidance=w, **everywhere)
        assert close(out, np.asarray(analyze.from_signed_unit(expected))), w
    assert close(sampler(labels, seed=1, steps=1, autoguidance=0.0, **everywhere), weak_digits)  # 0: the weak alone
    # The weak network runs only inside its interval, on the conditional copy alone (never told the null
    # label: StandIn checks), beside classifier-free guidance's two copies.
    weak.calls.clear()
    sampler(labels, seed=1, autoguidance=2.0, autoguidance_interval=(0.6, 5.0), guidance=1.5)
    tans = np.tan(train_diffusion.sampling_angles(10)[:-1])
    assert weak.calls == [1] * int(((tans > 0.6) & (tans <= 5.0)).sum())
    # Untold, a sampler with a weak network draws with SAMPLER_DEFAULTS, one without with classifier-free
    # guidance alone (WITHOUT_WEAK_NETWORK).
    assert sampler.defaults == train_diffusion.SAMPLER_DEFAULTS
    alone = train_diffusion.Sampler(good, compiled=False)
    assert alone.defaults == {**train_diffusion.SAMPLER_DEFAULTS, **train_diffusion.WITHOUT_WEAK_NETWORK}
    assert alone.defaults["autoguidance"] == 1
    weak.calls.clear()
    sampler(labels, seed=1)
    assert len(weak.calls) == int(((tans > 0.6) & (tans <= 5.0)).sum()) * (train_diffusion.AUTOGUIDANCE != 1)
    # Beside classifier-free guidance both corrections add up, each from the conditional estimate.
    unconditional = mnist["x_test"][4:6]
    guided = StandIn(signed(good_digits), signed(unconditional))
    out = train_diffusion.Sampler(guided, compiled=False, weak_network=weak)(
        labels, seed=1, steps=1, autoguidance=2.0, **{**everywhere, "guidance": 1.5})
    cond, uncond, bad = signed(good_digits), signed(unconditional), signed(weak_digits)
    expected = np.clip(uncond + 1.5 * (cond - uncond) + (cond - bad), -1, 1)
    assert close(out, np.asarray(analyze.from_signed_unit(expected)))
    with pytest.raises(analyze.DataError, match="autoguidance needs a weak network"):
        train_diffusion.Sampler(good, compiled=False)(labels, seed=1, autoguidance=2.0)
    with pytest.raises(analyze.DataError, match="needs the same inputs"):
        train_diffusion.Sampler(good, compiled=False, weak_network=InkWitness())


def test_the_weak_network_is_told_the_same_ink():
    quantiles = [[digit / 100, digit / 100 + 0.01] for digit in range(10)]
    network, weak = InkWitness(), InkWitness()
    labels = np.array([3, 8, 1], np.int32)
    train_diffusion.Sampler(network, quantiles, compiled=False, weak_network=weak)(
        labels, 2, steps=2, guidance=1.0, autoguidance=2.0, autoguidance_interval=(0.0, np.inf))
    assert len(weak.shown) == len(network.shown) == 2
    for (labels_shown, inks), (weak_labels, weak_inks) in zip(network.shown, weak.shown):
        np.testing.assert_array_equal(weak_labels, labels_shown)
        np.testing.assert_array_equal(weak_inks, inks)


def test_the_weak_network_loads_from_the_autoguide_folder(tmp_path, diffusion_run):
    copy_weights(diffusion_run, tmp_path, train_diffusion.WEIGHT_FILES)
    labels = analyze.requested_labels(None, 2)
    settings = {"steps": 3, "autoguidance": 3.0, "autoguidance_interval": (0.0, np.inf)}
    assert train_diffusion.load_sampler(tmp_path, SAME_ROUNDING).weak_network is None  # none to use
    with pytest.raises(analyze.DataError, match=f"{train_diffusion.WEAK_DIR} has none"):
        train_diffusion.load_sampler(tmp_path, SAME_ROUNDING, autoguidance=3.0)
    drawn = run_script(*diffusion_args(tmp_path, "--mode", "2", "--num-per-digit", "1", "--digit", "3", "--steps", "2"))
    assert drawn.returncode == 0, drawn.stderr
    # Said only when the defaults would autoguide (AUTOGUIDANCE).
    assert ("no weak network in" in drawn.stdout) == (train_diffusion.AUTOGUIDANCE != 1), drawn.stdout
    assert_clean_failure(run_script(*diffusion_args(tmp_path, "--mode", "2", "--autoguidance", "2")),
                         "autoguidance needs a weak network", f"{train_diffusion.WEAK_DIR} has none",
                         train_diffusion.WEAK_RECIPE)
    # Guided away from a copy of itself, a network draws what it draws unguided.
    (tmp_path / train_diffusion.WEAK_DIR).mkdir()
    copy_weights(diffusion_run, tmp_path / train_diffusion.WEAK_DIR, train_diffusion.WEIGHT_FILES)
    assert train_diffusion.load_sampler(tmp_path, SAME_ROUNDING, autoguidance=1).weak_network is None
    # There is one now: the defaults load it if they autoguide.
    assert ((train_diffusion.load_sampler(tmp_path, SAME_ROUNDING).weak_network is not None)
            == (train_diffusion.AUTOGUIDANCE != 1))
    sampler = train_diffusion.load_sampler(tmp_path, SAME_ROUNDING, autoguidance=3.0)
    assert close(sampler(labels, 5, **settings), sampler(labels, 5, steps=3))


def test_unwritable_output_is_one_line(tmp_path, gan_run):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder inside a file cannot be made, even by root
    result = run_script("train_gan.py", "--generate", "--weights-dir", gan_run, "--figures-dir", tmp_path,
                        "--num-per-digit", "1", "--output", blocker / "out.npz")
    assert_clean_failure(result, "out.npz: cannot write it")
