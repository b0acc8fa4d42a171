"""Loading, validating and caching digit CSVs; the train/validation split."""

import os

import numpy as np
import pytest

import analyze
from analyze import DataError
from conftest import write_csv


def test_round_trip_matches_the_arrays(tmp_path, mnist):
    path = write_csv(tmp_path / "d.csv", mnist["x_train"][:50], mnist["y_train"][:50])
    images, labels = analyze.parse_digits_csv(path)
    assert images.dtype == np.uint8 and images.shape == (50, 28, 28)
    np.testing.assert_array_equal(images, mnist["x_train"][:50])
    np.testing.assert_array_equal(labels, mnist["y_train"][:50])
    header = path.read_text().splitlines()[0].split(",")
    assert header[0] == "label" and header[1] == "pixel0" and header[-1] == "pixel783"


def test_cache_is_used_and_invalidated_when_the_csv_changes(tmp_path, mnist, monkeypatch):
    monkeypatch.setattr(analyze, "CACHE_DIR", tmp_path / "cache")
    path = write_csv(tmp_path / "d.csv", mnist["x_train"][:40], mnist["y_train"][:40])
    first = analyze.load_digits_csv(path)

    calls = []
    real_parse = analyze.parse_digits_csv
    monkeypatch.setattr(analyze, "parse_digits_csv", lambda *a: calls.append(a[0]) or real_parse(*a))
    second = analyze.load_digits_csv(path)
    assert calls == [], "an unchanged CSV must come from the cache"
    np.testing.assert_array_equal(first[0], second[0])

    write_csv(path, mnist["x_train"][40:70], mnist["y_train"][40:70])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    images, labels = analyze.load_digits_csv(path)
    assert len(calls) == 1 and len(images) == 30
    np.testing.assert_array_equal(labels, mnist["y_train"][40:70])


def test_csv_without_header_is_read(tmp_path, mnist):
    path = tmp_path / "noheader.csv"
    rows = np.column_stack([mnist["y_train"][:3], mnist["x_train"][:3].reshape(3, -1)])
    np.savetxt(path, rows, fmt="%d", delimiter=",")
    images, labels = analyze.parse_digits_csv(path)
    np.testing.assert_array_equal(labels, mnist["y_train"][:3])
    np.testing.assert_array_equal(images, mnist["x_train"][:3])


def _csv_with(tmp_path, mutate):
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    rows = [["3"] + ["0"] * 784 for _ in range(3)]
    mutate(rows)
    path = tmp_path / "bad.csv"
    path.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda rows: rows[1].__setitem__(5, "abc"), "non-numeric value 'abc' at line 3"),
    (lambda rows: rows[2].__setitem__(9, ""), "empty, NaN or missing cell at line 4"),
    (lambda rows: rows[0].__setitem__(0, "11"), "label 11 at line 2 is not a digit"),
    (lambda rows: rows[0].__setitem__(0, "2.5"), "is not a digit"),
    (lambda rows: rows[1].__setitem__(100, "256"), "pixel value 256 at line 3"),
    (lambda rows: rows[1].__setitem__(100, "-1"), "outside 0-255"),
    (lambda rows: rows[0].pop(), "missing cell at line 2, column 'pixel783'"),
])
def test_bad_cells_are_reported_with_their_place(tmp_path, mutate, message):
    path = _csv_with(tmp_path, mutate)
    with pytest.raises(DataError, match=message.replace(".", r"\.").replace("(", r"\(")):
        analyze.parse_digits_csv(path)


def test_missing_empty_and_header_only_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        analyze.load_digits_csv(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        analyze.parse_digits_csv(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n")
    with pytest.raises(DataError, match="no rows"):
        analyze.parse_digits_csv(tmp_path / "header.csv")


def test_split_is_stratified_and_refuses_too_few_rows(mnist):
    images, labels = mnist["x_train"][:1000], mnist["y_train"][:1000]
    (x_train, y_train), (x_val, y_val) = analyze.split_train_validation(images, labels, seed=1)
    assert len(x_val) == 100 and len(x_train) == 900
    expected = np.bincount(labels, minlength=10) / len(labels)
    assert np.abs(np.bincount(y_val, minlength=10) / len(y_val) - expected).max() < 0.02
    with pytest.raises(DataError, match="too few to split"):
        analyze.split_train_validation(images[:5], labels[:5])
    # A digit with a single example cannot be stratified; the split still works.
    few = np.concatenate([labels[labels != 9][:40], [9]])
    analyze.split_train_validation(images[:41], few)


def test_fid_is_zero_for_identical_sets_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 8))
    assert abs(analyze.frechet_distance(a, a)) < 1e-6
    assert analyze.frechet_distance(a, a + 1.0) == pytest.approx(8.0, rel=1e-6)
    b = rng.standard_normal((500, 8)) * 2
    assert analyze.frechet_distance(a, b) > 1.0


def test_within_digit_variety_sees_collapse():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 50)
    varied = rng.standard_normal((500, 4))
    collapsed = varied * 0.05
    assert analyze.within_digit_variety(collapsed, labels) < 0.1 * analyze.within_digit_variety(varied, labels)


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    analyze.write_json_atomic({"a": 1}, tmp_path / "r.json")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert analyze.record_path(tmp_path / "m.weights.h5").name == "m.json"


def test_keep_previous_copies_weights_and_record(tmp_path):
    weights = tmp_path / "m.weights.h5"
    assert analyze.keep_previous(weights) is None  # nothing to keep
    weights.write_bytes(b"trained")
    analyze.write_json_atomic({"epochs": 3}, analyze.record_path(weights))
    previous = analyze.keep_previous(weights)
    assert previous.name == "m.previous.weights.h5" and previous.read_bytes() == b"trained"
    assert analyze.read_record(previous) == {"epochs": 3}
    assert weights.exists()
    assert analyze.keep_previous(weights) == previous  # the same bytes are kept once
    weights.write_bytes(b"one epoch of a restart")  # starting over again must not lose "trained"
    second = analyze.keep_previous(weights)
    assert second.name == "m.previous-2.weights.h5" and second.read_bytes() == b"one epoch of a restart"
    assert previous.read_bytes() == b"trained" and analyze.read_record(second) == {"epochs": 3}


def test_keep_previous_numbers_a_models_files_alike(tmp_path):
    checkpoint, average = tmp_path / "d_model.weights.h5", tmp_path / "d_ema.weights.h5"
    checkpoint.write_bytes(b"checkpoint")
    average.write_bytes(b"average")
    analyze.previous_copy(average).write_bytes(b"an older average")  # only one file has a copy
    kept = analyze.keep_previous(checkpoint, average)
    assert kept.name == "d_model.previous-2.weights.h5"
    assert analyze.previous_copy(average, 2).read_bytes() == b"average"
    assert not analyze.previous_copy(checkpoint).exists()


def test_paper_cleanliness_counts_faint_and_grey_pixels_and_tinted_digits():
    clean = np.zeros((4, 28, 28), np.uint8)
    clean[:, 10:18, 10:18] = 255
    assert analyze.paper_cleanliness(clean) == {"zero_pixels": 1 - 64 / 784, "faint_pixels": 0.0,
                                                "grey_pixels": 0.0, "tinted_digits": 0.0}
    hazy = clean.copy()
    hazy[0][clean[0] == 0] = 2          # an invisible haze: faint, not tinted
    hazy[1, :3, :20] = 10               # 60 grey pixels: tinted
    hazy[2, :2, :28] = 29               # 56 grey pixels: not yet tinted
    score = analyze.paper_cleanliness(hazy)
    assert score["faint_pixels"] == (784 - 64) / (4 * 784)
    assert score["grey_pixels"] == (60 + 56) / (4 * 784)
    assert score["tinted_digits"] == 0.25
