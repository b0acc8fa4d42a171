"""What train_diffusion.py and train_gan.py do alike: the contract they keep for analyze.py and
the web page (analyze.GENERATOR_SCRIPTS), their shared flags and one-line errors, the
resumable fit loop and moving average, and drawing in bfloat16. Each model's own behaviour is
in test_diffusion.py and test_gan.py.

The tests here draw with the shipped weights in weights/ (they only read them, and write
their pictures and copies elsewhere): no training needed."""

from pathlib import Path

import numpy as np
import pytest

import analyze
import train_diffusion
import train_gan
from conftest import ROOT, SAME_ROUNDING, assert_clean_failure, copy_weights, run_script

GENERATORS = [train_diffusion, train_gan]
SHIPPED = analyze.WEIGHTS_DIR


def script(module):
    return f"{module.__name__}.py"


# -- the contract (analyze.GENERATOR_SCRIPTS) -------------------------------------------------

@pytest.mark.parametrize("module", GENERATORS)
def test_generator_scripts_keep_the_contract(module, tmp_path):
    assert module in analyze.generator_modules()
    assert isinstance(module.MODEL_NAME, str) and module.WEIGHT_FILES[0].endswith(".weights.h5")
    assert module.MAKE_COMMAND.startswith(f"python {script(module)}")
    sampler = module.load_sampler(SHIPPED)
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
        module.load_sampler(tmp_path / "nowhere")


@pytest.mark.parametrize("module", GENERATORS)
def test_sampler_loads_from_a_relative_weights_dir(monkeypatch, module):
    # The GAN once joined a relative --weights-dir onto itself and failed with "not found".
    monkeypatch.chdir(ROOT.parent)
    relative = Path(ROOT.name) / SHIPPED.relative_to(ROOT)

    def networks(sampler):  # what draws: the network, and the diffusion model's weak one
        return [net for net in (sampler.network, getattr(sampler, "weak_network", None)) if net is not None]

    loaded, shipped = networks(module.load_sampler(relative)), networks(module.load_sampler(SHIPPED))
    assert len(loaded) == len(shipped)
    for got, want in zip(loaded, shipped):
        assert all(np.array_equal(a, b) for a, b in zip(got.get_weights(), want.get_weights()))


@pytest.mark.parametrize("module", GENERATORS)
def test_the_command_line_draws_what_the_sampler_draws_and_a_seed_draws_the_same(tmp_path, module):
    flags = ["--mode", "2", "--digit", "5", "--num-per-digit", "3", "--seed", "9", "--weights-dir", SHIPPED,
             "--figures-dir", tmp_path, "--output", tmp_path / "cli.npz", "--precision", SAME_ROUNDING]
    result = run_script(script(module), *flags)
    assert result.returncode == 0, result.stderr
    assert "digits/s, float32)" in result.stdout  # what it drew in
    sampler = module.load_sampler(SHIPPED, SAME_ROUNDING)
    labels = analyze.requested_labels(5, 3)
    with np.load(tmp_path / "cli.npz") as archive:
        np.testing.assert_array_equal(archive["labels"], labels)
        # Another process, the same seed: the same digits; another seed, others.
        np.testing.assert_array_equal(archive["images"], sampler(labels, 9))
        assert not np.array_equal(archive["images"], sampler(labels, 10))
    assert (tmp_path / f"{'ddim' if module is train_diffusion else 'gan'}_generated_5.png").exists()


# -- shared flags and one-line errors -----------------------------------------------------------

@pytest.mark.parametrize("module", GENERATORS)
def test_generator_scripts_reject_bad_flags_alike(module):
    for flags, message in ((["--digit", "12"], "--digit must be 0-9"),
                           (["--num-per-digit", "0"], "--num-per-digit must be at least 1"),
                           (["--mode", "5"], "invalid choice"), (["--output", "x.txt"], "must end in .npz"),
                           (["--generate", "--from-scratch"], "not allowed with"),
                           (["--gen"], "unrecognized arguments"),  # no prefix matching
                           (["--precision", "float16"], "invalid choice"),
                           (["--stop-after", "0"], "--stop-after must be 1 to --epochs"),
                           (["--epochs", "3", "--stop-after", "4"], "--stop-after must be 1 to --epochs (3), got 4")):
        assert_clean_failure(run_script(script(module), *flags), message)


@pytest.mark.parametrize("module", GENERATORS)
def test_continuing_where_there_is_nothing_to_continue_is_one_line(tmp_path, module, tiny_csv):
    empty, figures = tmp_path / "empty", tmp_path / "figures"
    empty.mkdir()
    for dry_run in ([], ["--dry-run"]):
        result = run_script(script(module), "--mode", "1", *dry_run, "--csv", tiny_csv, "--weights-dir", empty,
                            "--figures-dir", figures)
        assert_clean_failure(result, "nothing to continue", f"{module.WEIGHT_FILES[0]} does not exist",
                             f"start a run with `{module.MAKE_COMMAND}`")
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert list(empty.iterdir()) == [] and not figures.exists()


@pytest.mark.parametrize("module, mode_flag", [(train_diffusion, "--mode=2"), (train_gan, "--generate")])
def test_missing_junk_and_mismatched_weights_fail_in_one_line(tmp_path, module, mode_flag):
    args = (script(module), mode_flag, "--num-per-digit", "1", "--figures-dir", tmp_path, "--weights-dir")
    assert_clean_failure(run_script(*args, tmp_path), "not found", module.MAKE_COMMAND)

    junk = tmp_path / "junk"
    junk.mkdir()
    for name in module.WEIGHT_FILES:
        (junk / name).write_text("not weights")
    assert_clean_failure(run_script(*args, junk), "does not fit", module.MAKE_COMMAND)

    # Both draw with their moving average, the last file, which with the record is all drawing needs.
    sampled = module.WEIGHT_FILES[-1]
    wrong = tmp_path / "wrong"
    copy_weights(SHIPPED, wrong, [sampled], record_of=module.WEIGHT_FILES[0])
    record_file = analyze.record_path(wrong / module.WEIGHT_FILES[0])
    record = analyze.read_record(wrong / module.WEIGHT_FILES[0])
    key = "widths" if module is train_diffusion else "width"
    record["config"][key] = [32, 64] if key == "widths" else 32  # builds, but not these weights
    analyze.write_json_atomic(record, record_file)
    result = run_script(*args, wrong)
    assert_clean_failure(result, "does not fit", sampled, module.MAKE_COMMAND)
    assert "Warning" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr

    record["config"]["colour"] = "blue"
    analyze.write_json_atomic(record, record_file)
    assert_clean_failure(run_script(*args, wrong), "unknown config key 'colour'")
    del record["config"]["colour"]
    record["config"][key] = "wide"
    analyze.write_json_atomic(record, record_file)
    assert_clean_failure(run_script(*args, wrong), f"config '{key}' should be")


def test_unwritable_output_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder inside a file cannot be made, even by root
    result = run_script("train_gan.py", "--generate", "--weights-dir", SHIPPED, "--figures-dir", tmp_path,
                        "--num-per-digit", "1", "--output", blocker / "out.npz")
    assert_clean_failure(result, "out.npz: cannot write it")


# -- training runs (analyze.fit_resumably, analyze.update_moving_average) -----------------------

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
    assert not train(stop_after=None) and "larger --epochs" in capsys.readouterr().out


def test_moving_average_decay_warms_up_then_reaches_its_setting():
    import keras

    network, average = (keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
                        for _ in range(2))
    network.set_weights([np.ones((1, 1), np.float32)])
    for step, decay in ((0, 1 / 10), (1, 2 / 11), (100_000, 0.999)):  # min(0.999, (1 + step) / (10 + step))
        average.set_weights([np.zeros((1, 1), np.float32)])
        analyze.update_moving_average(network, average, 0.999, step)
        np.testing.assert_allclose(average.get_weights()[0], 1 - decay, rtol=1e-4)


# -- precision (analyze.resolve_precision, analyze.network_in_precision) -----------------------

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


@pytest.mark.parametrize("module", GENERATORS)
def test_bfloat16_sampler_draws_nearly_the_float32_digits(module):
    labels = analyze.requested_labels(None, 1)
    exact, fast = module.load_sampler(SHIPPED, "float32"), module.load_sampler(SHIPPED, "bfloat16")
    assert {layer.compute_dtype for layer in exact.network.layers} == {"float32"}
    assert "bfloat16" in {layer.compute_dtype for layer in fast.network.layers}
    for got, want in zip(fast.network.get_weights(), exact.network.get_weights()):
        np.testing.assert_array_equal(got, want)  # the same float32 weights, only computed in bfloat16
    difference = np.abs(fast(labels, 4).astype(int) - exact(labels, 4).astype(int))
    assert difference.mean() < 2.0, difference.mean()
