"""Shared fixtures: tiny digit CSVs cut from the bundled MNIST copy, a script runner, and
dry-run trainings of the two generator scripts (test_diffusion.py, test_gan.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import analyze  # noqa: E402


@pytest.fixture(scope="session")
def mnist():
    with np.load(analyze.BUNDLE) as bundle:
        return {key: bundle[key] for key in bundle}


def write_csv(path, images, labels):
    """Write a CSV in the Train.csv layout (the project's own writer, also under test)."""
    analyze.write_csv(Path(path), np.asarray(images, np.uint8), np.asarray(labels))
    return Path(path)


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory, mnist):
    """300 training digits: enough to split and run every script's dry run."""
    return write_csv(tmp_path_factory.mktemp("data") / "tiny.csv",
                     mnist["x_train"][:300], mnist["y_train"][:300])


@pytest.fixture(scope="session")
def tiny_test_csv(tmp_path_factory, mnist):
    return write_csv(tmp_path_factory.mktemp("data") / "tiny_test.csv",
                     mnist["x_test"][:200], mnist["y_test"][:200])


SCRIPT_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
_script_server = None


def run_script(*args, stdin=None, timeout=300, fresh=False):
    """Run a project script as a user would (`python SCRIPT ARGS...`); returns a CompletedProcess.

    A .py script runs in a child of tests/script_server.py, which has TensorFlow imported
    already (~10 s saved a run); with fresh=True or MNIST_TESTS_FRESH=1, and for anything else
    such as `-c CODE`, it runs in a fresh interpreter."""
    global _script_server
    args = [str(arg) for arg in args]
    if fresh or os.environ.get("MNIST_TESTS_FRESH") == "1" or not args[0].endswith(".py"):
        return subprocess.run([sys.executable, *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=SCRIPT_ENV)
    if _script_server is None or _script_server.poll() is not None:
        _script_server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "script_server.py")], cwd=ROOT,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=SCRIPT_ENV)
    try:
        _script_server.stdin.write(json.dumps({"argv": args, "stdin": stdin, "timeout": timeout}) + "\n")
        _script_server.stdin.flush()
        line = _script_server.stdout.readline()
        if not line:
            raise RuntimeError(f"tests/script_server.py stopped (exit status {_script_server.wait()}); "
                               "its stderr is above")
        answer = json.loads(line)
    except BaseException:  # an answer half read would be taken for the next run's: start afresh
        _script_server.kill()
        _script_server = None
        raise
    if answer["timed_out"]:
        raise subprocess.TimeoutExpired(args, timeout, answer["stdout"], answer["stderr"])
    return subprocess.CompletedProcess([sys.executable, *args], answer["returncode"], answer["stdout"],
                                       answer["stderr"])


def assert_clean_failure(result, *fragments):
    """Bad input: non-zero exit, a one-line 'error:' message, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")
              or ": error:" in line]
    assert errors, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# -- the generator scripts' runs -----------------------------------------------------------

# Draws compared pixel for pixel across two loads use float32: in bfloat16 two builds of the same
# network in one process were seen to round a few pixels one grey level apart (only the first
# build in a process differed, so apparently through the layers' generated names).
SAME_ROUNDING = "float32"


def copy_weights(source, target, names, record_of=None):
    """Copy weights files `names` from folder `source` to `target`, with the record of
    `record_of` (default: the first of `names`, the file that carries it)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        (target / name).write_bytes((source / name).read_bytes())
    record_of = record_of or names[0]
    analyze.record_path(target / record_of).write_text(analyze.record_path(source / record_of).read_text())


def dry_run_training(tmp_path_factory, script, *flags):
    """One dry run of a generator script into a new, empty folder (its weights, pictures and
    --output all.npz): SimpleNamespace(dir=folder, result=the CompletedProcess)."""
    out = tmp_path_factory.mktemp(Path(script).stem)
    result = run_script(script, "--dry-run", "--weights-dir", out, "--figures-dir", out, "--output", out / "all.npz",
                        *flags)
    assert result.returncode == 0, result.stderr
    return SimpleNamespace(dir=out, result=result)


# Session-scoped: each pytest worker that runs a test needing one trains it once.
@pytest.fixture(scope="session")
def diffusion_training(tmp_path_factory, tiny_csv):
    """A diffusion model trained by the real script (mode 0, dry run), which then drew 2 per digit."""
    return dry_run_training(tmp_path_factory, "train_diffusion.py", "--mode", "0", "--csv", tiny_csv,
                            "--num-per-digit", "2")


@pytest.fixture(scope="session")
def diffusion_run(diffusion_training):
    return diffusion_training.dir


@pytest.fixture(scope="session")
def gan_training(tmp_path_factory, tiny_csv):
    """A GAN trained by the real script with no mode given (so it starts a run: the folder has
    no checkpoint), which then drew 3 per digit."""
    return dry_run_training(tmp_path_factory, "train_gan.py", "--csv", tiny_csv, "--num-per-digit", "3")


@pytest.fixture(scope="session")
def gan_run(gan_training):
    return gan_training.dir


@pytest.fixture(scope="session")
def web_server():
    """The web page's server with the shipped models, answering on a free port of 127.0.0.1."""
    from web import server

    app = server.start(models=server.Models.load(log=lambda line: None))
    yield app
    app.shutdown()
    app.server_close()
