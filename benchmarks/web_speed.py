"""How fast the web page's API answers (web/server.py), measured over HTTP on this machine.

    python benchmarks/web_speed.py                          # starts the server, measures, stops it
    python benchmarks/web_speed.py --url http://127.0.0.1:8000/   # a server already running

It starts `python analyze.py --serve --port 0` (a free port on 127.0.0.1), waits until the
models are loaded and warmed up, and makes the page's requests from one keep-alive
connection, timing each round trip: reading a drawn digit (a 280x280 PNG as the page's pad
sends it), 16 GAN digits, and 16 diffusion digits with their denoising steps (drawn by the
distilled sampler where weights/distilled holds one). Then a bounded load run: 8 threads
each send 50 reads at once. Where weights/distilled holds a distilled sampler, it then stops
that server and starts `python analyze.py --serve --port 0 --teacher`, and times the same 16
diffusion digits drawn by the full sampler (not with --url: only the server given is measured).
It prints a markdown table with the targets (p95 round trip: reading <= 50 ms, 16 GAN digits
<= 100 ms, 16 diffusion digits <= 2 s; the load run without errors), the distilled sampler's
p95 over the full one's (issue 38's bar: at most 1/3), and names any training job that shared
the CPU.
"""

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import analyze  # noqa: E402
import train_diffusion  # noqa: E402  (only has_distilled and DISTILL_COMMAND: no TensorFlow either)
from web import server as web_server  # noqa: E402  (stdlib and numpy only: no TensorFlow here)

TARGETS_S = {"read": 0.050, "gan": 0.100, "diffusion": 2.0, "diffusion-teacher": None}  # None: no target
DISTILLED_OVER_FULL_P95 = 1 / 3  # issue 38: the distilled sampler's p95 at most a third of the full one's


class Client:
    """One keep-alive connection, as a browser tab holds one."""

    def __init__(self, host, port):
        self.connection = http.client.HTTPConnection(host, port, timeout=120)

    def post(self, path, body):
        data = json.dumps(body).encode()
        start = time.perf_counter()
        self.connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        payload = response.read()
        seconds = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}: {payload[:200]!r}")
        return seconds, json.loads(payload), len(payload)

    def close(self):
        self.connection.close()


def drawn_digits(count=20):
    """MNIST test digits as the pad draws them: 280x280, black ink on white, as PNG data URLs."""
    with np.load(analyze.BUNDLE) as bundle:
        digits, labels = bundle["x_test"][:count], bundle["y_test"][:count]
    return [web_server.png_data_url(255 - np.kron(d, np.ones((10, 10), np.uint8))) for d in digits], labels


def cpu_seconds(pid):
    """CPU time (user + system) a process has used so far, or None where /proc cannot say."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def timed(client, path, bodies, repeats, warm_up, pid=None):
    """Round-trip times of `repeats` requests, and the server's CPU seconds per request (when
    the server is our child): with other jobs on the CPU, the wall time says how long a user
    waited, the CPU time how much work one answer is."""
    for i in range(warm_up):
        client.post(path, bodies[i % len(bodies)])
    before = cpu_seconds(pid) if pid else None
    results = [client.post(path, bodies[i % len(bodies)]) for i in range(repeats)]
    after = cpu_seconds(pid) if pid else None
    cpu = (after - before) / repeats if before is not None and after is not None else None
    return np.array([r[0] for r in results]), results, cpu


def summary(seconds):
    return {"n": len(seconds), "median": float(np.median(seconds)), "p95": float(np.percentile(seconds, 95)),
            "max": float(seconds.max())}


def load_run(host, port, body, threads, per_thread):
    """threads x per_thread reads at once, each thread on its own connection; errors counted."""
    errors, times = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(_):
        client = Client(host, port)
        barrier.wait()
        for _ in range(per_thread):
            try:
                seconds, data, _ = client.post("/api/classify", body)
                ok = data.get("digit") is not None
            except Exception as exc:  # counted, not raised: the run reports every failure
                with lock:
                    errors.append(repr(exc))
                client.close()
                client = Client(host, port)
                continue
            with lock:
                times.append(seconds)
                if not ok:
                    errors.append("no digit in the answer")
        client.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return time.perf_counter() - start, np.array(times), errors


def training_jobs():
    """The project's scripts (training, tests) running beside the benchmark: they share the CPU."""
    try:
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    jobs = set()
    for line in listing.splitlines():
        found = re.search(r"((train_\w+|analyze\w*)\.py( --?[\w-]+)*|pytest)", line)
        if found and "--serve" not in line and "web_speed" not in line:
            jobs.add(found.group(1).strip())
    return jobs


def start_server(teacher=False):
    """`python analyze.py --serve --port 0` (and --teacher); returns (process, url, log file,
    start-up seconds)."""
    log = tempfile.NamedTemporaryFile("w+", prefix="web-speed-", suffix=".log")
    process = subprocess.Popen([sys.executable, "analyze.py", "--serve", "--port", "0", *["--teacher"] * teacher],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    started = time.perf_counter()
    for line in process.stdout:
        print("  server: " + line.rstrip())
        found = re.search(r"open (http://\S+)", line)
        if found:
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, found.group(1), log, time.perf_counter() - started
    log.seek(0)
    raise SystemExit(f"the server did not start:\n{log.read()[-2000:]}")


def stop_server(process):
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


DIFFUSION_BODIES = [{"model": "diffusion", "digit": d, "count": 16, "seed": d} for d in range(10)]


def time_full_sampler(repeats):
    """The 16 diffusion digits drawn by the full sampler: a second server, `--serve --teacher`,
    started once the first one has stopped (never two at once); (seconds, results, CPU, start-up)."""
    print("starting python analyze.py --serve --port 0 --teacher (the diffusion model's full sampler)")
    process, url, _, startup = start_server(teacher=True)
    try:
        parts = urlsplit(url)
        client = Client(parts.hostname, parts.port)
        seconds, results, cpu = timed(client, "/api/generate", DIFFUSION_BODIES, repeats, warm_up=1, pid=process.pid)
        client.close()
    finally:
        stop_server(process)
    return seconds, results, cpu, startup


def distilled_over_full(distilled_p95, full_p95):
    """Issue 38's line: the distilled sampler's p95 over the full one's, against the bar."""
    ratio = distilled_p95 / full_p95
    verdict = "met" if ratio <= DISTILLED_OVER_FULL_P95 else "MISSED"
    return (f"16 diffusion digits, p95 of the distilled sampler over the full one's: {ratio:.2f} "
            f"(≤ {DISTILLED_OVER_FULL_P95:.2f}, 1/3): {verdict}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=analyze.HelpFormatter)
    parser.add_argument("--url", help="measure a server already running here instead of starting one "
                                      "(then the full sampler is not measured)")
    parser.add_argument("--reads", type=int, default=200, help="timed reads of a drawn digit")
    parser.add_argument("--gan", type=int, default=50, help="timed requests for 16 GAN digits")
    parser.add_argument("--diffusion", type=int, default=10,
                        help="timed requests for 16 diffusion digits (with each sampler)")
    parser.add_argument("--threads", type=int, default=8, help="load run: threads")
    parser.add_argument("--per-thread", type=int, default=50, help="load run: reads per thread")
    args = parser.parse_args()
    if min(args.reads, args.gan, args.diffusion, args.threads, args.per_thread) < 1:
        parser.error("--reads, --gan, --diffusion, --threads and --per-thread must be at least 1")

    process, startup, teacher = None, None, None
    distilled = train_diffusion.has_distilled(analyze.WEIGHTS_DIR)
    sharing = training_jobs()
    if args.url:
        url = args.url
    else:
        print("starting python analyze.py --serve --port 0")
        process, url, log, startup = start_server()
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        parser.error(f"--url {url}: {exc}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        analyze.fail("this benchmark only measures a server on this machine (127.0.0.1)")
    try:
        client = Client(host, port)
        images, labels = drawn_digits()
        reads = [{"image": image, "name": "drawing"} for image in images]
        pid = process.pid if process is not None else None
        read_s, read_results, read_cpu = timed(client, "/api/classify", reads, args.reads, warm_up=20, pid=pid)
        correct = np.mean([r[1]["digit"] == labels[i % len(labels)] for i, r in enumerate(read_results)])
        gan_s, gan_results, gan_cpu = timed(
            client, "/api/generate", [{"model": "gan", "digit": d, "count": 16, "seed": d} for d in range(10)],
            args.gan, warm_up=3, pid=pid)
        diffusion_s, diffusion_results, diffusion_cpu = timed(
            client, "/api/generate", DIFFUSION_BODIES, args.diffusion, warm_up=1, pid=pid)
        client.close()
        load_seconds, load_times, errors = load_run(host, port, reads[0], args.threads, args.per_thread)
        if process is not None and distilled:
            stop_server(process)
            process = None
            teacher = time_full_sampler(args.diffusion)
        sharing = sorted(sharing | training_jobs())
    except (OSError, http.client.HTTPException, RuntimeError, ValueError) as exc:
        # A refused connection, a busy server (503) or a page that is not ours: one line.
        analyze.fail(f"the server at {url} did not answer as web/server.py does: {exc}")
    finally:
        if process is not None:
            stop_server(process)

    def ms(seconds):
        return f"{1000 * seconds:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"

    sampler = "distilled sampler" if distilled else "full sampler"
    rows = [("read a drawn digit (POST /api/classify, 280x280 PNG)", "read", summary(read_s), read_results,
             read_cpu),
            ("16 GAN digits (POST /api/generate)", "gan", summary(gan_s), gan_results, gan_cpu),
            (f"16 diffusion digits + {diffusion_results[0][1]['num_steps']} denoising steps, {sampler} "
             "(POST /api/generate)", "diffusion", summary(diffusion_s), diffusion_results, diffusion_cpu)]
    if teacher is not None:
        teacher_s, teacher_results, teacher_cpu, _ = teacher
        rows.append((f"16 diffusion digits + {teacher_results[0][1]['num_steps']} denoising steps, full sampler "
                     "(`--serve --teacher`)", "diffusion-teacher", summary(teacher_s), teacher_results, teacher_cpu))
    print()
    print("| request | n | median | p95 | max | target (p95) | server CPU per request | answer size |")
    print("|---|---|---|---|---|---|---|---|")
    for name, key, stats, results, cpu in rows:
        if TARGETS_S[key] is None:
            target = "none: the distilled sampler's comparison"
        else:
            target = f"≤ {ms(TARGETS_S[key])}: {'met' if stats['p95'] <= TARGETS_S[key] else 'MISSED'}"
        size = np.median([r[2] for r in results])
        size = f"{size / 1024:.0f} KB" if size >= 10240 else f"{size / 1024:.1f} KB"
        print(f"| {name} | {stats['n']} | {ms(stats['median'])} | {ms(stats['p95'])} | {ms(stats['max'])} "
              f"| {target} | {ms(cpu) if cpu is not None else '-'} | {size} |")
    n_load = args.threads * args.per_thread
    load = summary(load_times) if len(load_times) else {"median": float("nan"), "p95": float("nan"),
                                                        "max": float("nan")}
    print(f"| load: {args.threads} threads × {args.per_thread} reads at once | {n_load} | {ms(load['median'])} "
          f"| {ms(load['p95'])} | {ms(load['max'])} | 0 errors: {'met' if not errors else 'MISSED'} "
          f"({len(errors)} errors) | | {len(load_times) / load_seconds:.0f} reads/s |")
    print()
    if teacher is not None:
        print(distilled_over_full(rows[2][2]["p95"], rows[3][2]["p95"]))
    elif not distilled:
        print(f"distilled over full: no distilled sampler in "
              f"{analyze.display_path(analyze.WEIGHTS_DIR / train_diffusion.DISTILLED_DIR)} "
              f"(`{train_diffusion.DISTILL_COMMAND}` makes one): the page drew with the full one")
    else:
        print("distilled over full: not measured (--url: start `python analyze.py --serve --teacher` and "
              "measure it with --url too)")
    print(f"drawn digits read correctly: {correct:.0%} of {len(read_results)}")
    if startup is not None:
        print(f"server start-up (TensorFlow, three models, warm-up): {startup:.1f} s"
              + (f"; with --teacher: {teacher[3]:.1f} s" if teacher is not None else ""))
    if errors:
        print("load-run errors (first 5): " + "; ".join(errors[:5]))
    if sharing:
        print("the CPU was shared with: " + ", ".join(f"`{job}`" for job in sharing))
    else:
        print("nothing else of the project's was running: the CPU was the server's and this client's")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
