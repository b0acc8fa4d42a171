"""Runs project scripts for the tests in children forked from this process, which has the heavy
libraries imported already.

Importing TensorFlow and Keras takes ~10 s of CPU on the slower CI machines, and the suite runs
scripts some seventy times: half the suite's time went to those imports. A child forked from
here starts with them loaded and otherwise runs the script as `python SCRIPT ARGS...` would:
its own argv, working folder, stdin, stdout and stderr, `__name__ == "__main__"`, and the exit
code Python would give (1 and a traceback for an uncaught exception), its exit handlers run.
Whatever the imports printed to stderr is printed again at the start of each child's stderr,
as a fresh interpreter would print it. Project modules are not imported here, so each child
imports them fresh. (Forking a process that has imported TensorFlow is safe so long as no
TensorFlow op has run in it: this process runs none.) tests/test_dry_runs.py and
MNIST_TESTS_FRESH=1 (every script) still run scripts in fresh interpreters.

Protocol (conftest.run_script): one JSON line per request on stdin,
{"argv": [...], "stdin": text or null, "timeout": seconds}; one JSON line per answer on stdout,
{"returncode": int, "stdout": text, "stderr": text, "timed_out": bool}. The answers go out on
a copy of the original stdout; fd 1 itself points at stderr, so nothing printed by mistake
can garble them.
"""

import atexit
import ctypes
import json
import os
import runpy
import shutil
import signal
import sys
import tempfile
import time
import traceback


def import_heavy_libraries():
    """Import what the children should find loaded; returns what the imports wrote to stderr."""
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import matplotlib  # noqa: F401
            import numpy  # noqa: F401
            import pandas  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return captured.read()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def exit_code(exc):
    """What `python` exits with for a SystemExit, printing its message as Python does."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def run_child(argv, stdin_path, out_path, err_path, import_noise):
    """In the forked child: become `python argv...` and never return."""
    code = 1
    try:
        os.chdir(ROOT)
        for fd, path, mode in ((0, stdin_path, os.O_RDONLY), (1, out_path, os.O_WRONLY), (2, err_path, os.O_WRONLY)):
            opened = os.open(path, mode)
            os.dup2(opened, fd)
            os.close(opened)
        os.write(2, import_noise)
        sys.stdin = open(0, closefd=False)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        script = os.path.abspath(argv[0])
        sys.argv = list(argv)
        sys.path[0] = os.path.dirname(script)
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    except KeyboardInterrupt:  # Python re-raises SIGINT: exit status -2
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        # What interpreter shutdown does that os._exit would skip (this process must not unwind
        # into the server's loop): exit handlers, then Python's and C's buffered output.
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        ctypes.CDLL(None).fflush(None)
        if code < 0:
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code & 0xFF)


def serve_one(request, folder, import_noise):
    folder = tempfile.mkdtemp(dir=folder)  # new files each run: nothing left over from the last
    paths = [os.path.join(folder, name) for name in ("stdin", "stdout", "stderr")]
    for path, text in zip(paths, (request.get("stdin") or "", "", "")):
        with open(path, "w") as file:
            file.write(text)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        run_child(request["argv"], *paths, import_noise)
    deadline = time.monotonic() + request.get("timeout", 300)
    timed_out = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            timed_out = True
            break
        time.sleep(0.02)
    with open(paths[1]) as out, open(paths[2]) as err:
        return {"returncode": os.waitstatus_to_exitcode(status), "stdout": out.read(), "stderr": err.read(),
                "timed_out": timed_out}


def main():
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import_noise = import_heavy_libraries()
    # Not a TemporaryDirectory: its clean-up runs at exit, and so in every child's exit handlers.
    folder = tempfile.mkdtemp(prefix="script-server-")
    try:
        for line in sys.stdin:
            answer = serve_one(json.loads(line), folder, import_noise)
            answers.write(json.dumps(answer) + "\n")
            answers.flush()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
