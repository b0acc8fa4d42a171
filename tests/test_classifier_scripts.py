"""train_classifier.py and analyze_classifier.py end to end, as a user runs them."""

import argparse
import json
import shutil

import h5py
import numpy as np
import pytest

import analyze
import analyze_classifier
import train_classifier
from conftest import ROOT, assert_clean_failure, run_script, write_csv
from test_pictures import encode_png, photo_of


@pytest.fixture(scope="module")
def dry_weights(tmp_path_factory, tiny_csv, tiny_test_csv):
    """A CNN trained for a few batches by the real script, with its record."""
    out = tmp_path_factory.mktemp("weights")
    result = run_script("train_classifier.py", "--dry-run", "--csv", tiny_csv, "--test-csv",
                        tiny_test_csv, "--weights", out / "c.weights.h5", "--figures-dir", out)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    return out / "c.weights.h5"


def test_help_answers_without_tensorflow():
    for script in ("train_classifier.py", "analyze_classifier.py", "train_diffusion.py", "train_gan.py", "analyze.py"):
        code = (f"import sys, runpy; sys.argv = ['{script}', '--help']\n"
                f"try:\n    runpy.run_path('{script}', run_name='__main__')\n"
                "except SystemExit:\n    pass\n"
                "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, script\n")
        result = run_script("-c", code)
        assert result.returncode == 0, result.stderr
        assert "default" in result.stdout
        assert "(default: None)" not in result.stdout, script


def test_an_ensemble_averages_its_networks_and_a_finished_network_is_not_trained_again(tmp_path, mnist):
    networks = [train_classifier.build_classifier("mlp") for _ in range(2)]  # the smallest: any arch joins alike
    args = argparse.Namespace(weights=tmp_path / "c.weights.h5", members=2, arch="mlp", seed=5, epochs=3,
                              csv=analyze.TRAIN_CSV, augment=True, batch_size=128, dry_run=False)
    finished = tmp_path / ".member1-c.weights.h5"  # as an interrupted run leaves it
    networks[1].save_weights(finished)
    settings = {"arch": "mlp", "seed": 6, "epochs": 3, "csv": "dataset/Train.csv", "augment": True,
                "batch_size": 128, "dry_run": False}
    analyze.write_json_atomic({"settings": settings, "wall_time_s": 12.5}, analyze.record_path(finished))
    read_back, history, seconds, work_file = train_classifier.train_network(args, 1, None, None, None)
    assert history is None and seconds == 12.5 and work_file == finished
    ensemble = train_classifier.ensemble_of("mlp", [networks[0], read_back])
    digits = analyze.to_model_input(mnist["x_test"][:8])
    alone = [np.asarray(network(digits)) for network in networks]
    np.testing.assert_allclose(np.asarray(ensemble(digits)), np.mean(alone, axis=0), atol=1e-6)
    assert analyze.with_features(ensemble).outputs[1].shape[-1] == 2 * 64
    args.epochs = 4  # another run's network is not taken for this one's
    with pytest.raises(analyze.DataError, match="another run"):
        train_classifier.train_network(args, 1, None, None, None)


def test_dry_run_saves_weights_record_and_curves(dry_weights):
    record = json.loads(analyze.record_path(dry_weights).read_text())
    assert record["config"] == {"arch": "cnn", "members": 1}
    assert record["training"]["epochs"] == 1 and "wall_time_s" in record["training"]
    assert 0 <= record["metrics"]["test_accuracy"] <= 1
    assert (dry_weights.parent / "classifier_cnn_training_curves.png").stat().st_size > 1000
    with h5py.File(dry_weights) as saved:  # inference only: no optimizer state in the file
        assert "layers" in saved and "optimizer" not in saved
    leftovers = [p.name for p in dry_weights.parent.iterdir() if p.name.startswith((".tmp", ".best", ".backup"))]
    assert leftovers == []


def test_checkpoint_holds_the_averaged_weights_not_the_last_steps(tmp_path, mnist):
    """Validation and the best-epoch checkpoint see the optimizer's moving average of the
    weights: the callbacks swap it in before the checkpoint is written (and the fit ends with
    it in the model)."""
    import keras

    class LastStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.weights = [v.numpy().copy() for v in self.model.trainable_weights]

    images, labels = mnist["x_train"][:512], mnist["y_train"][:512]
    batches = train_classifier.make_dataset(images, labels, 64, True, 0.5, seed=0)
    model = train_classifier.build_classifier("cnn")
    train_classifier.compile_classifier(model, "cnn", len(batches))
    last_step, best = LastStep(), tmp_path / "best.weights.h5"
    model.fit(batches, validation_data=batches.take(2), epochs=1, verbose=0,
              callbacks=[last_step, *train_classifier.training_callbacks(best)])
    saved = train_classifier.build_classifier("cnn")
    saved.load_weights(best)
    saved_weights = [v.numpy() for v in saved.trainable_weights]
    for checkpoint, final in zip(saved_weights, [v.numpy() for v in model.trainable_weights]):
        np.testing.assert_array_equal(checkpoint, final)
    assert not all(np.allclose(checkpoint, raw) for checkpoint, raw in zip(saved_weights, last_step.weights))


def test_mlp_dry_run(tmp_path, tiny_csv):
    result = run_script("train_classifier.py", "--arch", "mlp", "--dry-run", "--csv", tiny_csv,
                        "--test-csv", "", "--weights", tmp_path / "m.weights.h5", "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["config"] == {"arch": "mlp", "members": 1}


def test_worse_weights_never_replace_better_ones(tmp_path, dry_weights, tiny_csv, tiny_test_csv):
    target = tmp_path / "c.weights.h5"
    shutil.copy(dry_weights, target)
    record = json.loads(analyze.record_path(dry_weights).read_text())
    record["metrics"]["test_accuracy"] = 0.999  # pretend the existing weights are excellent
    analyze.write_json_atomic(record, analyze.record_path(target))
    before = target.read_bytes()
    result = run_script("train_classifier.py", "--dry-run", "--csv", tiny_csv, "--test-csv",
                        tiny_test_csv, "--weights", target, "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "kept" in result.stdout
    assert target.read_bytes() == before
    assert (tmp_path / "c.new.weights.h5").exists()
    # Untested, a run cannot show it is better; and a real run's weights are safe from a dry run.
    record["training"].pop("dry_run")
    analyze.write_json_atomic(record, analyze.record_path(target))
    result = run_script("train_classifier.py", "--dry-run", "--csv", tiny_csv, "--test-csv", "",
                        "--weights", target, "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "c.weights.h5 was made by a real run" in result.stdout
    assert target.read_bytes() == before and not analyze.previous_copy(target).exists()
    assert "cannot show it is better" in train_classifier.better_weights_reason(record, {"val_accuracy": 0.9})
    assert "measured on" in train_classifier.better_weights_reason(
        record, {"test_accuracy": 1.0, "test_csv": "other.csv"})
    assert train_classifier.better_weights_reason(record, {"test_accuracy": 0.9995,
                                                           "test_csv": record["metrics"]["test_csv"]}) is None


def test_interrupted_training_resumes_from_its_backup(tmp_path, tiny_csv):
    """Ctrl-C after the first epoch leaves a backup; the next run starts at epoch 2."""
    import subprocess
    import sys
    import time

    target = tmp_path / "c.weights.h5"
    args = ["train_classifier.py", "--csv", tiny_csv, "--test-csv", "", "--weights", target,
            "--figures-dir", tmp_path, "--epochs", "3", "--batch-size", "16"]
    # A callback-free way to interrupt after epoch 1: kill the process once the backup exists.
    proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    backup = tmp_path / ".backup-c-cnn"
    deadline = time.time() + 120
    while time.time() < deadline and not any(backup.rglob("*.json")) and proc.poll() is None:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert any(backup.rglob("*.json")), "no backup was written after the first epoch"
    assert not target.exists()
    result = run_script(*args)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and "Epoch 1/3" not in result.stdout
    assert target.exists() and not backup.exists()


def test_a_damaged_backup_is_one_line_and_kept(tmp_path, tiny_csv):
    """A backup that cannot be loaded (a crash mid-write, a disk error) names its folder."""
    target = tmp_path / "c.weights.h5"
    backup = tmp_path / ".backup-c-cnn"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"not an HDF5 file")
    (backup / "training_metadata.json").write_text('{"epoch": 1}')
    result = run_script("train_classifier.py", "--csv", tiny_csv, "--test-csv", "", "--weights", target,
                        "--figures-dir", tmp_path, "--epochs", "2", "--batch-size", "16")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot resume" in result.stderr and ".backup-c-cnn" in result.stderr
    assert (backup / "latest.weights.h5").exists() and not target.exists()


def test_analyze_classifier_reports_on_a_csv_as_json(tmp_path, dry_weights, tiny_test_csv):
    result = run_script("analyze_classifier.py", "--weights", dry_weights, "--csv", tiny_test_csv,
                        "--figures-dir", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 200 and 0 <= summary["accuracy"] <= 1
    assert "precision" in result.stdout  # sklearn's classification report
    assert (tmp_path / "classifier_confusion_tiny_test.png").exists()


def test_analyze_classifier_recognizes_pictures_as_json(tmp_path, dry_weights, mnist):
    paths = []
    for i, kwargs in enumerate([{}, {"dark_ink": False}, {"rgb": True}]):
        path = tmp_path / f"pic{i}.png"
        path.write_bytes(encode_png(photo_of(mnist["x_test"][i], **kwargs)))
        paths.append(path)
    result = run_script("analyze_classifier.py", "--weights", dry_weights, "--image", *paths,
                        "--figures-dir", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout.strip().splitlines()[-1])["predictions"]
    assert [p["file"] for p in predictions] == [str(p) for p in paths]
    assert all(0 <= p["digit"] <= 9 and 0 <= p["confidence"] <= 1 for p in predictions)
    assert (tmp_path / "recognized_pictures.png").exists()


@pytest.mark.skipif(not analyze.CLASSIFIER_WEIGHTS.exists(), reason="no shipped classifier weights")
def test_shipped_classifier_reads_synthetic_pictures(tmp_path, mnist):
    paths, truth = [], []
    for i in range(10):
        kwargs = [{}, {"dark_ink": False}, {"rgb": True}][i % 3]
        path = tmp_path / f"pic{i}.png"
        path.write_bytes(encode_png(photo_of(mnist["x_test"][i], **kwargs)))
        paths.append(path)
        truth.append(int(mnist["y_test"][i]))
    result = run_script("analyze_classifier.py", "--image", *paths, "--figures-dir", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout.strip().splitlines()[-1])["predictions"]
    assert [p["digit"] for p in predictions] == truth


def test_analysis_uses_the_training_builder():
    assert analyze_classifier.load_classifier is train_classifier.load_classifier
    source = (ROOT / "analyze_classifier.py").read_text() + (ROOT / "analyze.py").read_text()
    assert "Conv2D" not in source and "Dense(" not in source


@pytest.mark.parametrize("make_csv, message", [
    (lambda p: p.write_text(""), "file is empty"),
    (lambda p: p.write_text("label,pixel0\n1,2\n"), "expected 785 columns"),
    (lambda p: p.write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n"
                            + "12," + ",".join(["0"] * 784) + "\n"), "not a digit"),
])
def test_bad_training_csv_fails_cleanly(tmp_path, make_csv, message):
    csv = tmp_path / "bad.csv"
    make_csv(csv)
    result = run_script("train_classifier.py", "--dry-run", "--csv", csv, "--weights", tmp_path / "w.weights.h5")
    assert_clean_failure(result, message)


def test_too_few_rows_and_missing_csv_fail_cleanly(tmp_path, mnist):
    csv = write_csv(tmp_path / "five.csv", mnist["x_train"][:5], mnist["y_train"][:5])
    result = run_script("train_classifier.py", "--dry-run", "--csv", csv, "--weights", tmp_path / "w.weights.h5")
    assert_clean_failure(result, "too few to split")
    result = run_script("analyze_classifier.py", "--csv", tmp_path / "absent.csv")
    assert_clean_failure(result, "file not found")


def test_unknown_arch_fails_cleanly():
    assert_clean_failure(run_script("train_classifier.py", "--arch", "resnet"), "invalid choice: 'resnet'")


def test_missing_and_incompatible_weights_fail_cleanly(tmp_path, tiny_csv):
    result = run_script("analyze_classifier.py", "--weights", tmp_path / "none.weights.h5")
    assert_clean_failure(result, "not found", "python train_classifier.py")
    run_script("train_classifier.py", "--arch", "mlp", "--dry-run", "--csv", tiny_csv, "--test-csv", "",
               "--weights", tmp_path / "m.weights.h5", "--figures-dir", tmp_path)
    (tmp_path / "m.json").write_text(json.dumps({"config": {"arch": "cnn"}}))  # lies about the arch
    result = run_script("analyze_classifier.py", "--weights", tmp_path / "m.weights.h5")
    assert_clean_failure(result, "does not fit", "python train_classifier.py")
    assert "Warning" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    (tmp_path / "junk.weights.h5").write_text("junk")
    result = run_script("analyze_classifier.py", "--weights", tmp_path / "junk.weights.h5")
    assert_clean_failure(result, "does not fit")


def test_bad_pictures_fail_cleanly(tmp_path, dry_weights):
    text = tmp_path / "note.png"
    text.write_text("hello")
    result = run_script("analyze_classifier.py", "--weights", dry_weights, "--image", text)
    assert_clean_failure(result, "not a readable PNG")
    result = run_script("analyze_classifier.py", "--weights", dry_weights, "--image", tmp_path / "gone.png")
    assert_clean_failure(result, "file not found")


@pytest.mark.parametrize("header", [True, False])
def test_kaggle_test_layout_gives_a_submission_file(tmp_path, dry_weights, mnist, header):
    """Kaggle's test.csv is the training layout without the label column."""
    import pandas as pd

    pixels = mnist["x_test"][:30].reshape(30, -1)
    csv = tmp_path / "test.csv"
    pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(784)]).to_csv(csv, index=False, header=header)
    result = run_script("analyze_classifier.py", "--weights", dry_weights, "--csv", csv,
                        "--predictions", tmp_path / "submission.csv", "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "30 unlabeled digits" in result.stdout
    submission = pd.read_csv(tmp_path / "submission.csv")
    assert list(submission.columns) == ["ImageId", "Label"]
    assert submission["ImageId"].tolist() == list(range(1, 31))
    assert submission["Label"].between(0, 9).all()
    # The same digits with labels: still scored, and the same predictions written.
    result = run_script("analyze_classifier.py", "--weights", dry_weights, "--csv",
                        write_csv(tmp_path / "labeled.csv", mnist["x_test"][:30], mnist["y_test"][:30]),
                        "--predictions", tmp_path / "labeled_predictions.csv", "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "accuracy on" in result.stdout
    assert pd.read_csv(tmp_path / "labeled_predictions.csv").equals(submission)


def test_unlabeled_csv_cannot_train(tmp_path, mnist):
    import pandas as pd

    csv = tmp_path / "test.csv"
    pd.DataFrame(mnist["x_test"][:30].reshape(30, -1)).to_csv(csv, index=False)
    result = run_script("train_classifier.py", "--dry-run", "--csv", csv, "--weights", tmp_path / "w.weights.h5")
    assert_clean_failure(result, "no label column")


def test_unwritable_figures_folder_is_a_warning_not_a_crash(tmp_path, dry_weights, mnist):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder inside a file cannot be made, even by root
    picture = tmp_path / "seven.png"
    picture.write_bytes(encode_png(photo_of(mnist["x_test"][0])))
    result = run_script("analyze_classifier.py", "--weights", dry_weights, "--image", picture,
                        "--figures-dir", blocker / "figures")
    assert result.returncode == 0, result.stderr
    assert "seven.png:" in result.stdout and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("warning: could not save") and "--figures-dir" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_prefix_abbreviations_are_refused():
    result = run_script("analyze.py", "--samples", "2000")
    assert_clean_failure(result, "unrecognized arguments: --samples")


def test_the_clean_kaggle_recipe_trains_and_predicts_without_touching_weights(tmp_path, dry_weights, mnist):
    """README's recipe: a classifier trained (dry_weights: a dry run) on a CSV in Kaggle's layout
    predicts a test.csv; the shipped weights, trained on MNIST's training digits, say so."""
    import pandas as pd
    from test_dry_runs import fingerprint

    before = fingerprint()
    weights = dry_weights
    test_csv = tmp_path / "test.csv"
    pd.DataFrame(mnist["x_test"][:20].reshape(20, -1), columns=[f"pixel{i}" for i in range(784)]).to_csv(
        test_csv, index=False)
    clean = run_script("analyze_classifier.py", "--weights", weights, "--csv", test_csv,
                       "--predictions", tmp_path / "submission.csv", "--figures-dir", tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert "note:" not in clean.stdout  # these weights never saw MNIST's training digits as a whole
    submission = pd.read_csv(tmp_path / "submission.csv")
    assert list(submission.columns) == ["ImageId", "Label"] and len(submission) == 20
    shipped = run_script("analyze_classifier.py", "--csv", test_csv, "--predictions", tmp_path / "shipped.csv",
                         "--figures-dir", tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    assert "note: weights/classifier_model.weights.h5 was trained on dataset/Train.csv" in shipped.stdout
    assert len(pd.read_csv(tmp_path / "shipped.csv")) == 20  # it still writes the file
    assert fingerprint() == before
