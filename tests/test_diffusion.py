"""train_diffusion.py end to end (dry-run training, continuing, drawing, the prompt, the weak
network that autoguides, bad input, the shipped records) and its sampler's math against
stand-in networks that know the answer. What it shares with train_gan.py is in
test_generators.py."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

import analyze
import train_diffusion
from conftest import SAME_ROUNDING, assert_clean_failure, copy_weights, run_script

CHECKPOINT, AVERAGE = train_diffusion.WEIGHT_FILES
TINY = {"widths": [8, 16], "embedding_dim": 16, "patch": 2}  # a U-Net that trains a step in a second


def diffusion_args(weights_dir, figures_dir, *extra):
    return ("train_diffusion.py", "--weights-dir", weights_dir, "--figures-dir", figures_dir, *extra)


# -- the script --------------------------------------------------------------------------------

def test_diffusion_dry_run_trains_saves_and_generates(diffusion_training):
    out, result = diffusion_training.dir, diffusion_training.result
    # A folder of its own, not weights/: the dry run writes there, as asked.
    assert "dry run: writing to" not in result.stdout
    assert "(the network in float32)" in result.stdout
    assert "no weak network in" in result.stdout  # so it drew with classifier-free guidance alone
    record = analyze.read_record(out / CHECKPOINT)
    assert record["builder"] == train_diffusion.BUILDER and record["config"] == train_diffusion.MODEL_CONFIG
    training = record["training"]
    assert training["epochs"] == 1 and training["dry_run"] is True and len(training["commands"]) == 1
    assert training["learning_rate"]["decay"] == "cosine to 0" and training["learning_rate"]["over_epochs"] == 1
    assert training["loss_weighting"] == "v" and training["precision"] == "float32"  # the defaults
    assert record["ema_sha256"] == analyze.file_sha256(out / AVERAGE)  # what lets drawing read it
    assert (out / "diffusion_progress.png").exists()
    assert all((out / f"ddim_generated_{d}.png").exists() for d in range(10))
    with np.load(out / "all.npz") as archive:
        assert archive["images"].shape == (20, 28, 28) and archive["images"].dtype == np.uint8
        np.testing.assert_array_equal(archive["labels"], np.repeat(np.arange(10), 2))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' save_weights under NumPy 2
def test_a_continued_run_counts_on_and_trains_as_its_record_says(tmp_path, diffusion_run, tiny_csv,
                                                                 monkeypatch, capsys):
    copy_weights(diffusion_run, tmp_path, train_diffusion.WEIGHT_FILES)
    record_file = analyze.record_path(tmp_path / CHECKPOINT)
    record = json.loads(record_file.read_text())
    record["training"]["loss_weighting"] = "min-snr"  # as if started with --loss-weighting min-snr
    record_file.write_text(json.dumps(record))
    flags = ["--mode", "1", "--dry-run", "--csv", tiny_csv, "--num-per-digit", "1", "--digit", "4"]
    refused = run_script(*diffusion_args(tmp_path, tmp_path, *flags, "--loss-weighting", "v"))
    assert_clean_failure(refused, "trained with --loss-weighting min-snr", "--loss-weighting chooses for new runs")
    assert "Epoch" not in refused.stdout
    # In-process, to stand on a CPU with bfloat16 in hardware: there --precision auto draws in
    # bfloat16, but trains in float32.
    monkeypatch.setattr(analyze, "native_bfloat16", lambda cpuinfo=None: True)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    train_diffusion.main([str(flag) for flag in diffusion_args(tmp_path, tmp_path, *flags)[1:]])
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "(the network in float32)" in out and "digits/s, bfloat16)" in out, out
    training = analyze.read_record(tmp_path / CHECKPOINT)["training"]
    assert training["epochs"] == 2 and len(training["commands"]) == 2 and len(training["history"]) == 2
    assert training["loss_weighting"] == "min-snr" and training["precision"] == "float32"
    assert training["learning_rate"]["over_epochs"] == 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' save_weights under NumPy 2
def test_diffusion_draws_the_average_file_its_record_vouches_for(tmp_path, diffusion_run):
    checkpoint, average_file = tmp_path / CHECKPOINT, tmp_path / AVERAGE
    copy_weights(diffusion_run, tmp_path, train_diffusion.WEIGHT_FILES)
    run = analyze.start_or_resume(2, tmp_path, train_diffusion.WEIGHT_FILES, train_diffusion.MODEL_CONFIG,
                                  train_diffusion.BUILDER, train_diffusion.MAKE_COMMAND)
    trainer = train_diffusion.load_diffusion(run)
    average, raw = trainer.ema_network.get_weights(), trainer.network.get_weights()
    assert not all(np.array_equal(a, r) for a, r in zip(average, raw))

    def drawn_weights():
        return train_diffusion.load_sampler(tmp_path, SAME_ROUNDING).network.get_weights()

    assert all(np.array_equal(got, want) for got, want in zip(drawn_weights(), average))
    # The file is what draws: other weights in it, vouched for by the record, are drawn.
    trainer.network.save_weights(average_file)
    record = json.loads(analyze.record_path(checkpoint).read_text())
    record["ema_sha256"] = analyze.file_sha256(average_file)
    analyze.record_path(checkpoint).write_text(json.dumps(record))
    assert all(np.array_equal(got, want) for got, want in zip(drawn_weights(), raw))
    # A file the record does not vouch for (another run's, junk), or none (one saved just before
    # an interruption, then lost): the average comes out of the checkpoint.
    for stale in (b"not weights", None):
        average_file.unlink()
        if stale:
            average_file.write_bytes(stale)
        assert all(np.array_equal(got, want) for got, want in zip(drawn_weights(), average))


@pytest.mark.parametrize("answers, expect_code, expect_texts", [
    ("x\n7\n2\n", 0, ["'x' is not a mode", "'7' is not a mode", "generated 1 digits"]),
    ("", 2, ["no answer at the mode prompt"]),
])
def test_diffusion_prompt(tmp_path, diffusion_run, answers, expect_code, expect_texts):
    result = run_script(*diffusion_args(diffusion_run, tmp_path, "--num-per-digit", "1", "--digit", "0",
                                        "--steps", "2"), stdin=answers)
    assert result.returncode == expect_code, result.stderr
    for text in expect_texts:
        assert text in result.stdout + result.stderr, text
    assert "Traceback" not in result.stderr
    if expect_code == 2:
        assert_clean_failure(result, "pass --mode")


def test_diffusion_rejects_bad_sampler_flags():
    for flags, message in ((["--steps", "0"], "--steps must be at least 1"),
                           (["--paper-level", "256"], "--paper-level must be 0-255"),
                           (["--paper-level", "-1"], "--paper-level must be 0-255"),
                           (["--guidance", "-0.5"], "--guidance must be 0 or more"),
                           (["--autoguidance", "-1"], "--autoguidance must be 0 or more"),
                           (["--loss-weighting", "l1"], "invalid choice")):
        assert_clean_failure(run_script("train_diffusion.py", "--mode", "2", *flags), message)


# -- distillation ------------------------------------------------------------------------------

def tiny_teacher(folder):
    """A small untrained network saved as a run's drawing weights, with the record that vouches for them."""
    network = train_diffusion.build_unet(**TINY)
    analyze.save_weights_atomic(network, folder / AVERAGE)
    analyze.write_json_atomic({"builder": train_diffusion.BUILDER, "config": TINY, "training": {},
                               "ema_sha256": analyze.file_sha256(folder / AVERAGE)},
                              analyze.record_path(folder / CHECKPOINT))
    return network


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' save_weights under NumPy 2
def test_a_distilled_sampler_learns_from_its_teacher_and_draws_until_the_teacher_changes(tmp_path, capsys):
    teacher_network = tiny_teacher(tmp_path)
    student_dir = tmp_path / train_diffusion.DISTILLED_DIR
    flags = [str(flag) for flag in diffusion_args(tmp_path, tmp_path, "--num-per-digit", "1", "--digit", "3")[1:]]
    train_diffusion.main([*flags, "--mode", "0", "--distill", "--dry-run", "--batch-size", "8"])
    assert "the teacher draws 20 digits to learn from" in capsys.readouterr().out
    record = analyze.read_record(student_dir / CHECKPOINT)
    teacher_sha = analyze.read_record(tmp_path / CHECKPOINT)["ema_sha256"]
    assert record["distilled_from"]["teacher_ema_sha256"] == teacher_sha and record["config"] == TINY
    assert record["training"]["epochs"] == 1 and record["ema_sha256"] == analyze.file_sha256(student_dir / AVERAGE)
    with np.load(student_dir / train_diffusion.PAIRS_FILE) as pairs:
        assert pairs["images"].shape == (20, 28, 28)  # whole rows of ten, at least the 2 batches of 8
    # A dry run's student is a plumbing check, not a sampler to draw with; as a real run's it is.
    assert not train_diffusion.has_distilled(tmp_path)
    record_file = analyze.record_path(student_dir / CHECKPOINT)
    record_file.write_text(record_file.read_text().replace('"dry_run": true', '"dry_run": false'))
    assert train_diffusion.has_distilled(tmp_path)
    # The student starts from its teacher's weights, and training moved it.
    student = train_diffusion.load_sampler(tmp_path, SAME_ROUNDING)
    assert student.defaults is train_diffusion.DISTILLED_DEFAULTS and student.weights == student_dir / CHECKPOINT
    assert not all(np.array_equal(a, b) for a, b in zip(student.network.get_weights(), teacher_network.get_weights()))
    train_diffusion.main([*flags, "--mode", "2"])
    out = capsys.readouterr().out
    assert "drawing with the distilled sampler" in out and f"\n{train_diffusion.DISTILLED_STEPS} network passes" in out
    # A student of another network (as the teacher's was, once trained on) is refused; the teacher still draws.
    record_file.write_text(record_file.read_text().replace(teacher_sha, "0" * 64))
    assert_clean_failure(run_script(*diffusion_args(tmp_path, tmp_path, "--mode", "2")),
                         "was distilled from another network", "--teacher")
    assert train_diffusion.load_sampler(tmp_path, SAME_ROUNDING, teacher=True).passes_per_digit() == 12  # 2 guided
    assert_clean_failure(run_script(*diffusion_args(tmp_path, tmp_path, "--mode", "2", "--distill")),
                         "--distill trains")
    assert_clean_failure(run_script(*diffusion_args(tmp_path, tmp_path, "--mode", "1", "--distill", "--dry-run")),
                         "was distilled from another network", "--mode 0 --distill")
    assert_clean_failure(run_script("train_diffusion.py", "--mode", "0", "--distill", "--guidance", "2"),
                         "--distill learns the full sampler at its defaults")


def test_teacher_pairs_keep_what_was_drawn_and_draw_the_same_noise_again(tmp_path):
    calls = []

    def teacher(labels, noise, steps):
        calls.append(len(labels))
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second chunk is drawn
        return np.clip(noise[..., 0] * 100, 0, 255).astype(np.uint8)

    teacher.passes_per_digit = lambda steps: steps
    path, about = tmp_path / "pairs.npz", {"seed": 5, "steps": 4}
    with pytest.raises(KeyboardInterrupt):
        train_diffusion.teacher_pairs(teacher, path, 40, 5, 20, about)
    with np.load(path) as kept:
        assert kept["images"].shape == (20, 28, 28)  # the first chunk was kept
    (images, labels, noise), seconds = train_diffusion.teacher_pairs(teacher, path, 40, 5, 20, about)
    assert calls == [20, 20, 20] and images.shape == (40, 28, 28) and noise.shape == (40, 28, 28, 1)
    assert seconds > 0
    np.testing.assert_array_equal(labels, np.tile(np.repeat(np.arange(10), 2), 2))
    np.testing.assert_array_equal(images, np.clip(noise[..., 0] * 100, 0, 255).astype(np.uint8))
    with pytest.raises(analyze.DataError, match="another teacher or sampler"):
        train_diffusion.teacher_pairs(teacher, path, 40, 6, 20, {**about, "seed": 6})


def test_a_distilled_sampler_makes_one_pass_a_step_and_has_no_guidance_to_set(mnist):
    digits = mnist["x_test"][:2]
    network = StandIn(signed(digits), signed(digits))
    student = train_diffusion.Sampler(network, defaults=train_diffusion.DISTILLED_DEFAULTS)
    labels = np.array([7, 2], np.int32)
    assert close(student(labels, seed=1, paper_level=0), digits)
    assert network.calls == [1] * train_diffusion.DISTILLED_STEPS == [1] * student.passes_per_digit()
    with pytest.raises(analyze.DataError, match="guidance is in its weights"):
        student(labels, seed=1, guidance=2.0)
    # The full sampler's count: a pass a step, one more for each step either guidance acts on.
    full = train_diffusion.Sampler(network, weak_network=network)
    assert full.passes_per_digit() == 17 == full.passes_per_digit(steps=10)


# -- the weak network (autoguidance) -----------------------------------------------------------

def test_the_weak_network_loads_from_its_averaged_weights_and_record(tmp_path, diffusion_run):
    # Drawing needs the averaged weights and the record, no checkpoint: weights/autoguide ships so.
    copy_weights(diffusion_run, tmp_path, [AVERAGE], record_of=CHECKPOINT)
    weak_dir = tmp_path / train_diffusion.WEAK_DIR
    assert train_diffusion.load_sampler(tmp_path, SAME_ROUNDING).weak_network is None  # none to use
    with pytest.raises(analyze.DataError, match=f"{train_diffusion.WEAK_DIR} has none"):
        train_diffusion.load_sampler(tmp_path, SAME_ROUNDING, autoguidance=3.0)
    assert_clean_failure(run_script(*diffusion_args(tmp_path, tmp_path, "--mode", "2", "--autoguidance", "2")),
                         "autoguidance needs a weak network", f"{train_diffusion.WEAK_DIR} has none",
                         train_diffusion.WEAK_RECIPE)
    # A checkpoint is not a weak network to draw with: its averaged weights are.
    copy_weights(diffusion_run, weak_dir, [CHECKPOINT])
    assert not train_diffusion.has_weak_network(tmp_path)
    (weak_dir / CHECKPOINT).unlink()
    copy_weights(diffusion_run, weak_dir, [AVERAGE], record_of=CHECKPOINT)
    assert train_diffusion.has_weak_network(tmp_path)
    assert train_diffusion.load_sampler(tmp_path, SAME_ROUNDING, autoguidance=1).weak_network is None
    # There is one now: the defaults load it if they autoguide.
    assert ((train_diffusion.load_sampler(tmp_path, SAME_ROUNDING).weak_network is not None)
            == (train_diffusion.AUTOGUIDANCE != 1))
    sampler = train_diffusion.load_sampler(tmp_path, SAME_ROUNDING, autoguidance=3.0)
    average = train_diffusion.build_unet(**train_diffusion.MODEL_CONFIG)
    average.load_weights(diffusion_run / AVERAGE)
    for got, want in zip(sampler.weak_network.get_weights(), average.get_weights()):
        np.testing.assert_array_equal(got, want)
    # Guided away from a copy of itself, a network draws what it draws unguided.
    labels = analyze.requested_labels(None, 2)
    guided = sampler(labels, 5, steps=3, autoguidance=3.0, autoguidance_interval=(0.0, np.inf))
    assert close(guided, sampler(labels, 5, steps=3, autoguidance=1.0))
    # Averaged weights its record does not vouch for are one line naming the weak network's recipe.
    (weak_dir / AVERAGE).write_bytes(b"not weights")
    with pytest.raises(analyze.DataError) as failure:
        train_diffusion.load_weak_network(tmp_path)
    assert train_diffusion.WEAK_RECIPE in str(failure.value) and "\n" not in str(failure.value)
    assert AVERAGE in str(failure.value) and CHECKPOINT not in str(failure.value)


def test_the_shipped_records_build_the_shipped_networks_and_vouch_for_their_averages():
    weights_dir = analyze.WEIGHTS_DIR
    for folder in (weights_dir, weights_dir / train_diffusion.WEAK_DIR):
        record = analyze.read_record(folder / CHECKPOINT)
        assert record["builder"] == train_diffusion.BUILDER
        assert analyze.checked_config(record, train_diffusion.MODEL_CONFIG, folder / CHECKPOINT,
                                      "make") == train_diffusion.MODEL_CONFIG
        assert record["ema_sha256"] == analyze.file_sha256(folder / AVERAGE)
    # The weak network ships as drawing needs it, its averaged weights and record alone...
    assert not (weights_dir / train_diffusion.WEAK_DIR / CHECKPOINT).exists()
    # ...made as WEAK_RECIPE says.
    training = analyze.read_record(weights_dir / train_diffusion.WEAK_DIR / CHECKPOINT)["training"]
    recipe = train_diffusion.parse_args(["--mode", "0", *train_diffusion.WEAK_RECIPE.split()])
    assert training["epochs"] == recipe.stop_after
    assert training["learning_rate"]["over_epochs"] == recipe.epochs
    assert training["loss_weighting"] == recipe.loss_weighting
    # The shipped network's figures were measured with the sampler's defaults (and the solver,
    # spacing and noise it has now, which older records still name).
    measured = dict(analyze.read_record(weights_dir / CHECKPOINT)["metrics"]["sampler"])
    assert {key: measured.pop(key) for key in train_diffusion.SAMPLER_DEFAULTS} == {
        **train_diffusion.SAMPLER_DEFAULTS, "guidance_interval": list(train_diffusion.GUIDANCE_INTERVAL),
        "autoguidance_interval": list(train_diffusion.AUTOGUIDANCE_INTERVAL)}
    assert measured in ({}, {"solver": "dpm++2m", "spacing": "angle", "eta": 0.0, "eta_interval": None})


# -- training, in-process ----------------------------------------------------------------------

def tiny_trainer(mnist, precision="float32", loss_weighting="v"):
    """A tiny trainer, seeded, and a step of training on 16 digits: (model, step)."""
    import keras

    keras.utils.set_random_seed(0)
    model = train_diffusion.make_diffusion(TINY, precision, loss_weighting)
    images, labels = mnist["x_train"][:16], mnist["y_train"][:16]
    return model, lambda: {key: float(value) for key, value in model.train_step((images, labels)).items()}


def test_min_snr_weighting_lightens_the_loss(mnist):
    """The network starts out answering v = 0 (its last convolution is zeros), so the first
    plain loss is the mean square of v, about 1; Min-SNR's weights are all at most 5/6."""
    plain, weighted = (tiny_trainer(mnist, loss_weighting=w)[1]()["loss"] for w in train_diffusion.LOSS_WEIGHTINGS)
    assert 0.5 < plain < 1.5, plain
    assert 0 < weighted <= 5 / 6 * plain + 1e-6, (weighted, plain)


def test_the_diffusion_model_trains_in_bfloat16_with_float32_weights_and_averages_them(mnist):
    model, step = tiny_trainer(mnist, precision="bfloat16")
    assert "bfloat16" in {layer.compute_dtype for layer in model.network.layers}
    assert {layer.compute_dtype for layer in model.ema_network.layers} == {"float32"}
    start = model.network.get_weights()
    assert np.isfinite(step()["loss"])
    # The learning rate warms up from 0 (the schedule a run sets when it starts does too).
    assert all(np.array_equal(a, b) for a, b in zip(start, model.network.get_weights()))
    model.optimizer.learning_rate = train_diffusion.learning_rate_schedule(1, 2)
    assert np.isfinite(step()["loss"])
    after = model.network.get_weights()
    assert {w.dtype for w in after} == {np.dtype("float32")}  # mixed precision: float32 weights
    assert any(not np.allclose(a, b) for a, b in zip(start, after))
    # The average started as the network, and the second step moved it by the warmed-up decay.
    decay = 3 / 12  # min(EMA_DECAY, (1 + 2) / (10 + 2))
    for averaged, old, new in zip(model.ema_network.get_weights(), start, after):
        np.testing.assert_allclose(averaged, decay * old + (1 - decay) * new, rtol=1e-5, atol=1e-6)


def test_min_snr_weights_cap_the_least_noisy_levels():
    """Min-SNR-5 in v terms: min(SNR, 5) / (SNR + 1), with SNR = cot^2(angle): cos^2(angle) where
    SNR <= 5, and 5 sin^2(angle) at the low-noise end, where the plain v loss weighs most."""
    angles = np.array([0.02, 0.1, 0.3, np.arctan(1 / np.sqrt(5)), 0.8, 1.5], np.float32)
    weights = np.asarray(train_diffusion.loss_weights(angles, "min-snr"))
    expected = np.where(1 / np.tan(angles) ** 2 > 5, 5 * np.sin(angles) ** 2, np.cos(angles) ** 2)
    np.testing.assert_allclose(weights, expected, rtol=1e-4)
    assert (weights <= 5 / 6 + 1e-6).all() and weights.argmax() == 3  # largest where SNR = 5
    np.testing.assert_array_equal(np.asarray(train_diffusion.loss_weights(angles, "v")), 1.0)


def test_the_record_says_what_each_stretch_of_training_computed_in():
    history = train_diffusion.precision_history
    assert history({}, "bfloat16") == "bfloat16"  # a fresh run
    assert history({"epochs": 5}, "bfloat16") == "float32, then bfloat16"  # records from before the key
    assert history({"epochs": 5, "precision": "bfloat16"}, "bfloat16") == "bfloat16"
    assert history({"epochs": 9, "precision": "float32, then bfloat16"}, "float32") == \
        "float32, then bfloat16, then float32"


# -- the sampler against stand-in networks -----------------------------------------------------

def oracle_v(x, angle, clean):
    """The exact v for a noisy x whose clean digit is `clean`: v = (cos x - clean) / sin."""
    c, s = np.cos(angle)[:, None, None, None], np.sin(angle)[:, None, None, None]
    return ((c * x - clean) / s).astype(np.float32)


class StandIn:
    """A 'network' that knows the clean digit: one for labelled calls, another for the null label.
    It logs how many copies of the batch each call holds (2: the unconditional rows beside the
    conditional ones). It answers through tf.py_function, so the sampler's compiled pass
    (train_diffusion.compiled_pass) calls it on every step, not once when it traces."""

    def __init__(self, conditional_clean, unconditional_clean):
        import tensorflow as tf

        self.conditional, self.unconditional = conditional_clean, unconditional_clean
        self.inputs = [SimpleNamespace(shape=shape, dtype=dtype)  # all compiled_pass reads of a Keras model
                       for shape, dtype in (((None, 28, 28, 1), tf.float32), ((None,), tf.float32),
                                            ((None,), tf.int32))]
        self.calls = []

    def __call__(self, inputs, training=False):
        import tensorflow as tf

        return tf.py_function(self.answer, list(inputs), tf.float32)

    def answer(self, x, angle, labels):
        x, angle, labels = x.numpy(), angle.numpy(), labels.numpy()
        n = len(self.conditional)
        null = labels == train_diffusion.NULL_LABEL
        copies = len(x) // n  # 2 when guided: conditional rows, then unconditional
        self.calls.append(copies)
        assert not null[:n].any() and null[n:].all(), labels
        clean = np.where(null[:, None, None, None], np.concatenate([self.unconditional] * copies),
                         np.concatenate([self.conditional] * copies))
        return oracle_v(x, angle, clean)


def signed(digits):
    return np.asarray(analyze.to_signed_unit(digits))


def close(a, b):
    return np.abs(a.astype(int) - b.astype(int)).max() <= 1


# The defaults blank faint pixels and guide only some steps; these tests pin what they test.
EXACT = {"paper_level": 0, "guidance_interval": (0.0, np.inf)}


def test_sampler_with_an_exact_network_recovers_the_clean_digit(mnist):
    digits = mnist["x_test"][:4]
    sampler = train_diffusion.Sampler(StandIn(signed(digits), signed(digits)))
    for steps in (1, 5, 20):
        out, estimates = sampler.with_steps(np.array([7, 2, 1, 0], np.int32), seed=3, steps=steps, **EXACT)
        assert close(out, digits), steps
        assert estimates.shape == (steps, 4, 28, 28)
        np.testing.assert_array_equal(estimates[-1], out)


def test_guidance_zero_is_unconditional_and_one_is_conditional(mnist):
    conditional, unconditional = mnist["x_test"][:2], mnist["x_test"][2:4]
    network = StandIn(signed(conditional), signed(unconditional))
    sampler = train_diffusion.Sampler(network)
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
    # Without a weak network the defaults guide the 4th and 5th of 10 steps: 12 passes per digit.
    network.calls.clear()
    sampler(labels, seed=1)
    assert network.calls == [1, 1, 1, 2, 2, 1, 1, 1, 1, 1]


def test_autoguidance_steers_away_from_the_weak_network(mnist):
    good_digits, weak_digits = mnist["x_test"][:2], mnist["x_test"][2:4]
    good = StandIn(signed(good_digits), signed(good_digits))
    weak = StandIn(signed(weak_digits), signed(weak_digits))
    sampler = train_diffusion.Sampler(good, weak_network=weak)
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
    # guidance alone.
    assert sampler.defaults == train_diffusion.SAMPLER_DEFAULTS
    alone = train_diffusion.Sampler(good)
    assert alone.defaults == {**train_diffusion.SAMPLER_DEFAULTS, "autoguidance": 1.0}
    assert alone.defaults["autoguidance"] == 1
    weak.calls.clear()
    sampler(labels, seed=1)
    assert len(weak.calls) == int(((tans > 0.6) & (tans <= 5.0)).sum()) * (train_diffusion.AUTOGUIDANCE != 1)
    # Beside classifier-free guidance both corrections add up, each from the conditional estimate.
    unconditional = mnist["x_test"][4:6]
    guided = StandIn(signed(good_digits), signed(unconditional))
    out = train_diffusion.Sampler(guided, weak_network=weak)(
        labels, seed=1, steps=1, autoguidance=2.0, **{**everywhere, "guidance": 1.5})
    cond, uncond, bad = signed(good_digits), signed(unconditional), signed(weak_digits)
    expected = np.clip(uncond + 1.5 * (cond - uncond) + (cond - bad), -1, 1)
    assert close(out, np.asarray(analyze.from_signed_unit(expected)))
    with pytest.raises(analyze.DataError, match="autoguidance needs a weak network"):
        alone(labels, seed=1, autoguidance=2.0)


def test_paper_level_blanks_only_the_faintest_pixels(mnist):
    digits = mnist["x_test"][:4].copy()
    digits[:, :3] = 2  # a faint haze along the top edge, where MNIST's paper is blank
    sampler = train_diffusion.Sampler(StandIn(signed(digits), signed(digits)))
    labels = np.array([7, 2, 1, 0], np.int32)
    as_estimated = sampler(labels, seed=3, steps=5, **EXACT)
    assert close(as_estimated, digits) and (as_estimated[:, :3] > 0).any()
    cleaned, steps = sampler.with_steps(labels, seed=3, steps=5, guidance_interval=(0.0, np.inf), paper_level=3)
    assert (cleaned[:, :3] == 0).all()
    ink = as_estimated > 3
    np.testing.assert_array_equal(cleaned[ink], as_estimated[ink])  # the digit itself is untouched
    np.testing.assert_array_equal(steps[-1], cleaned)


def test_sampling_angles_walk_evenly_from_noise_to_the_clean_digit():
    min_angle, max_angle = train_diffusion.MIN_ANGLE, train_diffusion.MAX_ANGLE
    angles = train_diffusion.sampling_angles(10)
    assert len(angles) == 11 and angles[-1] == 0 and (np.diff(angles) < 0).all()
    np.testing.assert_allclose(angles[:-1], max_angle * np.arange(10, 0, -1) / 10)
    np.testing.assert_array_equal(train_diffusion.sampling_angles(1), [max_angle, 0.0])
    # None of the noisy steps below the least noise trained on.
    many = train_diffusion.sampling_angles(1000)
    assert many[:-1].min() == pytest.approx(min_angle) and many[-1] == 0
    # Intervals are of tan(angle), the noise-to-signal ratio: (0.6, 2.5] holds the 4th-7th of 10
    # steps (tan 1.96, 1.38, 1.00, 0.73), the default guidance interval the 4th and 5th.
    assert train_diffusion.in_interval(angles[:-1], (0.6, 2.5)) == [False] * 3 + [True] * 4 + [False] * 3
    assert train_diffusion.in_interval(angles[:-1], train_diffusion.GUIDANCE_INTERVAL) == \
        [False] * 3 + [True] * 2 + [False] * 5


def test_solver_coefficients_are_dpm_solver_2m_and_keep_an_exact_estimate_exact():
    angles = train_diffusion.sampling_angles(10)
    a, b, c1, c2 = train_diffusion.solver_coefficients(angles).T
    np.testing.assert_allclose(c1 + c2, 1, atol=1e-6)
    # From x = cos x0 + sin z, one step lands on cos' x0 + sin' z.
    np.testing.assert_allclose(a * np.sin(angles[:-1]), np.sin(angles[1:]), atol=1e-6)
    np.testing.assert_allclose(a * np.cos(angles[:-1]) + b, np.cos(angles[1:]), atol=1e-6)
    # DPM-Solver++(2M) (Lu et al. 2022) in log signal-to-noise steps h: b = cos' (1 - e^-h), and
    # the estimate extrapolated as x0 + (x0 - x0_prev) h / (2 h_prev), but on the first step (no
    # previous estimate) and the last (to zero noise, h infinite).
    log_snr = np.log(np.cos(angles[:-1]) / np.sin(angles[:-1]))
    h = np.diff(log_snr)
    np.testing.assert_allclose(b[:-1], np.cos(angles[1:-1]) * -np.expm1(-h), rtol=1e-5)
    np.testing.assert_allclose(c2[1:-1], -h[1:] / (2 * h[:-1]), rtol=1e-5)
    assert c2[0] == 0 and c2[-1] == 0 and (c2[1:-1] < 0).all()
    assert a[-1] == 0 and b[-1] == 1
