"""Hostile pictures against the web page's server: each is refused (4xx), or read within 3 s
and 600 MB more memory, and a normal read answers within 2 s while two of them are decoded.

    python benchmarks/web_hostile.py            # 30-megapixel pictures, at the server's limits
    python benchmarks/web_hostile.py --quick    # 3-megapixel ones: checks the plumbing

The server runs in this process (web.server.start, the shipped classifier), so its memory is this
process's: a thread samples the resident size while each request is answered. The pictures
are made here with Pillow: a progressive JPEG with its last scan repeated up to the limit and
far beyond it, an RGBA PNG, a GIF whose one frame is far larger than its screen, and a GIF of
many frames.
"""

import argparse
import base64
import http.client
import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze  # noqa: E402
from web import server as web_server  # noqa: E402

BARS = {"seconds": 3.0, "extra_mb": 600, "normal_read_s": 2.0}


def resident_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def encoded(array, fmt, **options):
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **options)
    return out.getvalue()


def pictures(megapixels):
    """{name: file bytes}, each a case the server must refuse or read within the bars."""
    width = int((megapixels * 1e6 * 1.2) ** 0.5)
    height = int(megapixels * 1e6 / width)
    page = np.zeros((height, width, 3), np.uint8)
    page[::200], page[:, ::300] = 255, 128
    jpeg = encoded(page, "JPEG", progressive=True, quality=50)
    last_scan = jpeg[jpeg.rindex(b"\xff\xda"):-2]
    scans = jpeg.count(b"\xff\xda")
    rgba = np.dstack([page, np.full(page.shape[:2], 255, np.uint8)])
    frame = np.zeros((28, 28), np.uint8)
    frames = encoded(frame, "GIF", save_all=True, append_images=[Image.fromarray(frame)] * 300)
    return {
        f"progressive JPEG, {web_server.MAX_JPEG_SCANS} scans (the limit)":
            jpeg[:-2] + last_scan * (web_server.MAX_JPEG_SCANS - scans) + b"\xff\xd9",
        "progressive JPEG, 40 scans": jpeg[:-2] + last_scan * (40 - scans) + b"\xff\xd9",
        "RGBA PNG": encoded(rgba, "PNG"),
        "GIF: a 10x10 screen, one 20000x20000 frame": (
            b"GIF89a" + (10).to_bytes(2, "little") * 2 + b"\x00\x00\x00" + b"\x2c" + b"\x00\x00" * 2
            + (20000).to_bytes(2, "little") * 2 + b"\x00" + b"\x02\x02\x4c\x01\x00" + b";"),
        "GIF of 301 frames": frames,
    }


def classify(port, data):
    """(status, seconds) of one /api/classify request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(data).decode()}).encode()
    started = time.perf_counter()
    connection.request("POST", "/api/classify", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, time.perf_counter() - started


def measured(port, data):
    """(status, seconds, most extra memory in MB) of reading one picture."""
    before, peak, done = resident_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident_mb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    status, seconds = classify(port, data)
    done.set()
    sampler.join()
    return status, seconds, max(peak[0] - before, 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=analyze.HelpFormatter)
    parser.add_argument("--megapixels", type=float, default=web_server.MAX_PICTURE_PIXELS / 1e6,
                        help="the size of the large pictures")
    parser.add_argument("--quick", action="store_true", help="3-megapixel pictures: checks the plumbing")
    args = parser.parse_args()
    megapixels = 3.0 if args.quick else args.megapixels
    with tempfile.TemporaryDirectory() as no_generators:  # pictures need the classifier alone
        models = web_server.Models.load(weights_dir=no_generators, log=lambda line: None)
    app = web_server.start(models=models)
    print(f"machine: {analyze.cpu_summary()}; pictures of {megapixels:g} megapixels")
    print("| picture | answer | seconds | extra memory | bar |\n|---|---|---|---|---|")
    cases = pictures(megapixels)
    failures = 0
    for name, data in cases.items():
        status, seconds, extra = measured(app.port, data)
        met = 400 <= status < 500 or (status == 200 and seconds <= BARS["seconds"] and extra <= BARS["extra_mb"])
        failures += not met
        print(f"| {name} ({len(data) / 1e6:.2f} MB) | {status} | {seconds:.2f} | {extra:.0f} MB | "
              f"{'met' if met else 'NOT met'} |")
    hostile = next(iter(cases.values()))
    threads = [threading.Thread(target=classify, args=(app.port, hostile)) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    drawn = np.full((280, 280), 255, np.uint8)
    drawn[60:220, 130:150] = 0
    status, seconds = classify(app.port, web_server.encode_png(drawn))
    for thread in threads:
        thread.join()
    met = status == 200 and seconds <= BARS["normal_read_s"]
    failures += not met
    print(f"a drawn digit read while two of the first are decoded: {status} in {seconds:.2f} s "
          f"(bar {BARS['normal_read_s']:g} s: {'met' if met else 'NOT met'})")
    app.shutdown()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
