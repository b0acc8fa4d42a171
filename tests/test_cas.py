"""benchmarks/cas.py --quick: a CNN trained on generated digits is tested on real ones."""

import json
import re
import shutil

from conftest import assert_clean_failure, run_script


def test_cas_quick_on_a_weights_folder(tmp_path):
    # Only the GAN's files in the folder (what drawing reads): the diffusion model is skipped for
    # want of weights, which also shows --weights-dir is where the generators are looked for.
    for name in ("gan_generator.weights.h5", "gan_generator.json", "gan_generator_ema.weights.h5"):
        shutil.copy(f"weights/{name}", tmp_path / name)
    result = run_script("benchmarks/cas.py", "--quick", "--weights-dir", tmp_path, "--save",
                        "--precision", "float32")
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\| (.+?) \| (\d+\.\d\d)% \|", result.stdout, re.M)
    assert [name for name, _ in rows] == ["real training digits", "GAN"], result.stdout
    cas = json.loads((tmp_path / "gan_generator.json").read_text())["metrics"]["cas"]  # --save wrote there
    assert cas["precision"] == "float32"  # what it drew in, as asked


def test_cas_without_generators_is_one_line(tmp_path):
    assert_clean_failure(run_script("benchmarks/cas.py", "--quick", "--weights-dir", tmp_path),
                         "no trained generator")


def test_cas_saves_only_default_settings(tmp_path):
    # The record's figures are the defaults'; a CAS at other guidance is printed, never stored.
    assert_clean_failure(run_script("benchmarks/cas.py", "--quick", "--weights-dir", tmp_path, "--save",
                                    "--guidance", "1.0"), "--save stores figures of the default sampler settings")


def test_cas_quick_never_saves_into_the_shipped_records():
    assert_clean_failure(run_script("benchmarks/cas.py", "--quick", "--save"), "--quick only checks the plumbing")
