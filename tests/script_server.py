"""Runs project scripts for the tests in children forked from this process, which has the heavy
libraries imported already.

Importing TensorFlow and Keras takes ~10 s of CPU on the slower CI machines, and the suite runs
scripts some seventy times: half the suite's time went to those imports. A child forked from
here starts with them loaded and otherwise runs the script as `python SCRIPT ARGS...` would:
its own argv, working folder, stdin, stdout and stderr, `__name__ == "__main__"`, and the exit
code Python would give (1 and a traceback for an uncaught exception). Project modules are not
imported here, so each child imports them fresh.

Protocol (conftest.run_script): one JSON line per request on stdin,
{"argv": [...], "stdin": text or null, "timeout": seconds}; one JSON line per answer on stdout,
{"returncode": int, "stdout": text, "stderr": text, "timed_out": bool}.
"""

import json
import os
import runpy
import signal
import sys
import tempfile
import time
import traceback

import keras  # noqa: F401  (preloaded for the children: the point of this server)
import matplotlib  # noqa: F401
import numpy  # noqa: F401
import pandas  # noqa: F401
import tensorflow  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def exit_code(exc):
    """What `python` exits with for a SystemExit, printing its message as Python does."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def run_child(argv, stdin_path, out_path, err_path):
    """In the forked child: become `python argv...` and never return."""
    code = 1
    try:
        os.chdir(ROOT)
        for fd, path, mode in ((0, stdin_path, os.O_RDONLY), (1, out_path, os.O_WRONLY), (2, err_path, os.O_WRONLY)):
            opened = os.open(path, mode)
            os.dup2(opened, fd)
            os.close(opened)
        sys.stdin = open(0, closefd=False)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        script = os.path.abspath(argv[0])
        sys.argv = list(argv)
        sys.path[0] = os.path.dirname(script)
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def serve_one(request, folder):
    paths = [os.path.join(folder, name) for name in ("stdin", "stdout", "stderr")]
    for path, text in zip(paths, (request.get("stdin") or "", "", "")):
        with open(path, "w") as file:
            file.write(text)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        run_child(request["argv"], *paths)
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
    with tempfile.TemporaryDirectory(prefix="script-server-") as folder:
        for line in sys.stdin:
            answer = serve_one(json.loads(line), folder)
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
