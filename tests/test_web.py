"""The web page's server (`python analyze.py --serve`, web/server.py) over real HTTP: reading
drawn and uploaded digits as analyze_classifier.py does, generating the digits the scripts'
command lines draw, refusing bad requests without falling over, serving only its own files,
and starting and stopping as a command should."""

import base64
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

import analyze
import analyze_classifier
import train_diffusion
from conftest import ROOT, assert_clean_failure, run_script
from web import server

SAMPLES = sorted((analyze.DATASET_DIR / "samples").iterdir())


@pytest.fixture(scope="module")
def web(web_server):
    return web_server


def call(web, method, path, body=None, headers=None):
    """(status, headers, parsed JSON or raw bytes) of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {"Content-Type": "application/json", **(headers or {})} if body is not None else (headers or {})
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        data = json.loads(data)
    return response.status, response, data


def post(web, path, body, **kwargs):
    return call(web, "POST", path, body, **kwargs)


def raw(web, request_bytes):
    """Send bytes as they are (malformed requests) and parse the answer."""
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
        sock.sendall(request_bytes)
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
    return response.status, json.loads(data) if data else None


def png_url(pixels):
    return server.png_data_url(np.asarray(pixels, np.uint8))


def decode_png_url(url):
    import tensorflow as tf

    assert url.startswith("data:image/png;base64,")
    return tf.io.decode_png(base64.b64decode(url.split(",", 1)[1])).numpy()[..., 0]


def drawn(digit_image):
    """An MNIST digit as the page's pad sends it: 280x280, black ink on white."""
    return 255 - np.kron(digit_image, np.ones((10, 10), np.uint8))


@pytest.fixture(scope="module")
def seven_url(mnist):
    index = int(np.flatnonzero(mnist["y_test"] == 7)[0])
    return png_url(drawn(mnist["x_test"][index]))


def assert_error(status, data, expected_status, fragment=""):
    assert status == expected_status, (status, data)
    assert isinstance(data, dict) and set(data) == {"error"}, data
    assert fragment in data["error"], (fragment, data)
    assert "Traceback" not in data["error"] and "\n" not in data["error"]


# -- the page -----------------------------------------------------------------------------

def test_page_and_its_files_load(web):
    status, response, page = call(web, "GET", "/")
    assert status == 200 and response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.getheader("Content-Security-Policy")
    text = page.decode()
    assert '<canvas id="pad"' in text and 'href="/style.css"' in text and 'src="/app.js"' in text
    for path, kind in (("/style.css", "text/css"), ("/app.js", "text/javascript"),
                       ("/favicon.svg", "image/svg+xml"), ("/index.html", "text/html")):
        status, response, body = call(web, "GET", path)
        assert status == 200 and response.getheader("Content-Type").startswith(kind) and body
        # Works offline: nothing is loaded from another site.
        assert not re.search(rb"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", body), path
    status, response, body = call(web, "HEAD", "/")
    assert status == 200 and body == b"" and int(response.getheader("Content-Length")) == len(page)


@pytest.mark.parametrize("path", [
    "/../analyze.py", "/web/../analyze.py", "/%2e%2e/analyze.py", "/%2e%2e%2fanalyze.py",
    "/web/%2e%2e/analyze.py", "/..%2fanalyze.py", "/static/../../../../etc/passwd", "//etc/passwd",
    "/app.js/../../analyze.py", "/analyze.py", "/web/server.py", "/server.py", "/web/index.html",
    "/README_section.md", "/.git/config", "/api/../analyze.py", "/%00", "/api", "/api/",
])
def test_nothing_else_can_be_read(web, path):
    status, _, data = call(web, "GET", path)
    assert_error(status, data, 404)


def test_models_says_what_loaded(web):
    status, _, data = call(web, "GET", "/api/models")
    assert status == 200
    assert data["classifier"] == {"ready": True, "name": "WIDE_X2", "error": None}
    generators = {g["key"]: g for g in data["generators"]}
    assert generators["diffusion"]["ready"] and generators["diffusion"]["steps"] == train_diffusion.STEPS
    assert generators["gan"]["ready"] and generators["gan"]["steps"] == 1
    assert generators["gan"]["default_seed"] == 42 and generators["diffusion"]["default_seed"] == 42
    assert data["limits"]["max_count"] == server.MAX_COUNT


# -- reading digits -----------------------------------------------------------------------

def test_a_drawn_seven_is_read_as_7(web, seven_url):
    status, _, data = post(web, "/api/classify", {"image": seven_url, "name": "drawing"})
    assert status == 200, data
    assert data["digit"] == 7 and data["confidence"] > 0.5
    assert len(data["probabilities"]) == 10 and abs(sum(data["probabilities"]) - 1) < 1e-3
    # What it saw is exactly analyze_classifier's conversion of the same bytes.
    png = base64.b64decode(seven_url.split(",", 1)[1])
    expected = analyze_classifier.to_mnist_digit(analyze_classifier.decode_grey_image(png))
    np.testing.assert_array_equal(decode_png_url(data["seen"]), expected)
    # Plain base64 (no data: prefix) is read the same way.
    status, _, bare = post(web, "/api/classify", {"image": seven_url.split(",", 1)[1]})
    assert status == 200 and bare["probabilities"] == data["probabilities"]


def test_uploaded_pictures_get_the_scripts_answer(web):
    """Each sample picture: the digit and confidence `analyze_classifier.py --image` gives
    (its load_picture and analyze.classify, run here on the same files)."""
    digits = np.stack([analyze_classifier.load_picture(path) for path in SAMPLES])
    expected = analyze.classify(web.app.models.classifier, digits)
    for path, probabilities in zip(SAMPLES, expected):
        url = f"data:image/{path.suffix[1:]};base64," + base64.b64encode(path.read_bytes()).decode()
        status, _, data = post(web, "/api/classify", {"image": url, "name": path.name})
        assert status == 200, data
        assert data["digit"] == int(probabilities.argmax()), path.name
        assert abs(data["confidence"] - probabilities.max()) < 1e-4, path.name


def test_a_blank_picture_is_no_digit_rather_than_a_guess(web):
    status, _, data = post(web, "/api/classify", {"image": png_url(np.full((280, 280), 255)), "name": "drawing"})
    assert status == 200
    assert data["digit"] is None and data["probabilities"] is None
    assert data["message"] == "drawing: no digit found (the picture is blank)"


# -- generating digits --------------------------------------------------------------------

def sampled(web, key, digit, count, seed):
    """The same model's sampler called directly, as the scripts call it."""
    generator = web.app.models.generators[key]
    with generator.lock:
        return generator.sampler(analyze.requested_labels(digit, count), seed)


def test_sixteen_gan_threes(web):
    status, _, data = post(web, "/api/generate", {"model": "gan", "digit": 3})
    assert status == 200, data
    assert (data["count"], data["seed"], data["num_steps"], data["steps"]) == (16, 42, 1, None)
    digits = decode_png_url(data["digits"])
    assert digits.shape == (28, 16 * 28)
    reads = [r["digit"] for r in data["read"]]
    assert len(reads) == 16 and reads.count(3) >= 14, reads
    assert data["command"] == "python train_gan.py --generate --digit 3 --seed 42 --num-per-digit 16"
    expected = sampled(web, "gan", 3, 16, 42)
    np.testing.assert_array_equal(digits, server.sheet(expected[None]))


def test_gan_digits_are_the_command_lines(web, tmp_path):
    status, _, data = post(web, "/api/generate", {"model": "GAN", "digit": 5, "count": 4, "seed": 7})
    assert status == 200, data
    result = run_script("train_gan.py", "--generate", "--digit", "5", "--seed", "7", "--num-per-digit", "4",
                        "--output", tmp_path / "gan.npz", "--figures-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert data["command"] == "python train_gan.py --generate --digit 5 --seed 7 --num-per-digit 4"
    with np.load(tmp_path / "gan.npz") as archive:
        np.testing.assert_array_equal(decode_png_url(data["digits"]), server.sheet(archive["images"][None]))


def test_diffusion_answers_with_its_denoising_steps(web):
    status, _, data = post(web, "/api/generate", {"model": "diffusion", "digit": 8, "count": 2, "seed": 5})
    assert status == 200, data
    # The distilled sampler where weights/distilled holds one, else the full one.
    expected_steps = (train_diffusion.DISTILLED_STEPS if train_diffusion.has_distilled(analyze.WEIGHTS_DIR)
                      else train_diffusion.STEPS)
    assert data["num_steps"] == expected_steps
    assert data["command"] == "python train_diffusion.py --generate --digit 8 --seed 5 --num-per-digit 2"
    digits, steps = decode_png_url(data["digits"]), decode_png_url(data["steps"])
    assert digits.shape == (28, 56) and steps.shape == (expected_steps * 28, 56)
    np.testing.assert_array_equal(steps[-28:], digits)  # the last estimate is the digit
    assert np.abs(steps[:28].astype(int) - digits).mean() > 5  # the first one is still a blur
    np.testing.assert_array_equal(digits, server.sheet(sampled(web, "diffusion", 8, 2, 5)[None]))


def test_same_seed_same_digits(web):
    def digits(seed):
        status, _, data = post(web, "/api/generate", {"model": "gan", "digit": 1, "count": 6, "seed": seed})
        assert status == 200, data
        return data["digits"]

    first = digits(11)
    assert digits(11) == first
    assert digits(12) != first


def test_concurrent_requests_are_answered_correctly(web, seven_url):
    gan4 = {"model": "gan", "digit": 4, "count": 8}
    expected_gan = {seed: post(web, "/api/generate", {**gan4, "seed": seed})[2]["digits"] for seed in (1, 2)}

    def job(i):
        if i % 3 == 0:
            seed = 1 + i % 2
            status, _, data = post(web, "/api/generate", {**gan4, "seed": seed})
            return status == 200 and data["digits"] == expected_gan[seed]
        if i % 3 == 1:
            status, _, data = post(web, "/api/classify", {"image": seven_url})
            return status == 200 and data["digit"] == 7
        status, _, data = call(web, "GET", "/api/models")
        return status == 200 and data["classifier"]["ready"]

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(job, range(36)))


# -- bad requests -------------------------------------------------------------------------

def huge_png():
    png = bytearray(server.encode_png(np.zeros((2, 2), np.uint8)))
    png[16:24] = (100_000).to_bytes(4, "big") * 2  # claims 100000 x 100000 pixels
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode()


def as_url(data):
    return "data:image/png;base64," + base64.b64encode(data).decode()


def gif_frames(*frames):
    """A GIF of these uint8 frames (Pillow, test-only), its first frame's pixels."""
    import io

    from PIL import Image

    out = io.BytesIO()
    images = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    images[0].save(out, "GIF", save_all=True, append_images=images[1:])
    return out.getvalue()


def gif_with_a_huge_frame():
    """A 10x10 screen holding one 20000x20000 frame: small to send, 400 megapixels to decode."""
    return (b"GIF89a" + (10).to_bytes(2, "little") * 2 + b"\x00\x00\x00"
            + b"\x2c" + b"\x00\x00" * 2 + (20000).to_bytes(2, "little") * 2 + b"\x00"
            + b"\x02\x02\x4c\x01\x00" + b";")


def jpeg_with_scans(extra):
    """A progressive JPEG of a digit whose last scan is repeated `extra` more times."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.kron(np.eye(8, dtype=np.uint8) * 255, np.ones((8, 8), np.uint8))).save(
        out, "JPEG", progressive=True)
    data = out.getvalue()
    last_scan = data[data.rindex(b"\xff\xda"):-2]
    return data[:-2] + last_scan * extra + b"\xff\xd9"


def test_pictures_decode_within_bounds(web):
    # Of a GIF only the first frame is decoded, and its own size counts, not the screen's.
    digit, blank = np.full((28, 28), 255, np.uint8), np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 0
    trimmed, size = server.first_gif_frame(gif_frames(digit, blank, blank))
    assert size == (28, 28) and trimmed.endswith(b";")
    np.testing.assert_array_equal(analyze_classifier.decode_grey_image(trimmed), digit)
    status, _, data = post(web, "/api/classify", {"image": as_url(gif_frames(digit, blank))})
    assert status == 200 and data["digit"] == 1
    for picture, fragment in [
        (gif_with_a_huge_frame(), "20000x20000 pixels; the limit is 30 megapixels"),
        (b"GIF88a" + gif_frames(digit)[6:], "not a PNG, JPEG, GIF or BMP file"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "not a PNG, JPEG, GIF or BMP file"),
        (jpeg_with_scans(40), "scans; the limit is 16"),
        (b"\xff\xd8\x00" + jpeg_with_scans(0)[2:], "size cannot be read"),  # a stray byte before its size
    ]:
        status, _, data = post(web, "/api/classify", {"image": as_url(picture)})
        assert_error(status, data, 400, fragment)
    status, _, data = post(web, "/api/classify", {"image": as_url(jpeg_with_scans(2))})
    assert status == 200, data


GAN3 = {"model": "gan", "digit": 3}
BAD_BODIES = [
    ("/api/generate", "not json", "not valid JSON"),
    ("/api/generate", "", "not valid JSON"),
    ("/api/generate", "[1, 2]", "a JSON object"),
    ("/api/generate", b"\xff\xfe{}", "not UTF-8"),
    ("/api/generate", "[" * 100_000, "nested too deeply"),
    ("/api/generate", '{"model": "gan", "digit": NaN}', '"digit" must be an integer'),
    ("/api/generate", '{"model": "gan", "digit": ' + "9" * 5000 + "}", "not valid JSON"),
    ("/api/generate", {"model": "gan", "digit": "3"}, '"digit" must be an integer 0-9, got "3"'),
    ("/api/generate", {"model": "gan", "digit": True}, '"digit" must be an integer'),
    ("/api/generate", {"model": "gan", "digit": 3.0}, '"digit" must be an integer'),
    ("/api/generate", {"model": "gan", "digit": 10}, '"digit" must be 0-9'),
    ("/api/generate", {"model": "gan", "digit": -1}, '"digit" must be 0-9'),
    ("/api/generate", {"model": "gan"}, '"digit" is required'),
    ("/api/generate", {"digit": 3}, '"model" is required'),
    ("/api/generate", {"model": "vae", "digit": 3}, 'unknown model "vae"'),
    ("/api/generate", {"model": 1, "digit": 3}, '"model" must be a string'),
    ("/api/generate", {**GAN3, "count": 0}, '"count" must be 1-64'),
    ("/api/generate", {**GAN3, "count": 65}, '"count" must be 1-64'),
    ("/api/generate", {**GAN3, "count": "16"}, '"count" must be an integer'),
    ("/api/generate", {**GAN3, "count": None}, '"count" must be an integer'),
    ("/api/generate", {**GAN3, "seed": -1}, '"seed" must be 0-4294967295'),
    ("/api/generate", {**GAN3, "seed": 2 ** 40}, '"seed" must be 0-4294967295'),
    ("/api/generate", {**GAN3, "seed": False}, '"seed" must be an integer'),
    ("/api/generate", {**GAN3, "colour": "red"}, 'unknown field "colour"'),
    ("/api/classify", {}, '"image" is required'),
    ("/api/classify", {"image": 5}, '"image" must be a string'),
    ("/api/classify", {"image": ""}, '"image" is empty'),
    ("/api/classify", {"image": "data:image/png;base64,@@@"}, "not valid base64"),
    ("/api/classify", {"image": "data:image/png,plain"}, "must be a base64 data URL"),
    ("/api/classify", {"image": base64.b64encode(b"hello, world").decode(), "name": "note.txt"},
     "note.txt: not a PNG, JPEG, GIF or BMP file"),
    ("/api/classify", {"image": huge_png()}, "the limit is 30 megapixels"),
    ("/api/classify", {"image": "", "name": 3}, '"name" must be a string'),
    ("/api/classify", {"image": "", "extra": 1}, 'unknown field "extra"'),
]


@pytest.mark.parametrize("path, body, fragment", BAD_BODIES)
def test_bad_requests_get_400_and_the_server_carries_on(web, path, body, fragment):
    status, _, data = post(web, path, body)
    assert_error(status, data, 400, fragment)
    assert call(web, "GET", "/api/models")[0] == 200


@pytest.mark.parametrize("method, path, body, headers, expected, fragment", [
    ("POST", "/api/generate", GAN3, {"Content-Type": "text/plain"}, 415, "application/json"),
    ("POST", "/api/generate", GAN3, {"Host": "evil.example:8000"}, 400, "unexpected Host"),
    ("GET", "/api/generate", None, {}, 405, "answers POST"),
    ("POST", "/", GAN3, {}, 405, "answers GET"),
    ("DELETE", "/api/models", None, {}, 405, "answers GET"),
    ("POST", "/api/nothing", GAN3, {}, 404, "not found"),
])
def test_wrong_methods_types_and_hosts(web, method, path, body, headers, expected, fragment):
    status, _, data = call(web, method, path, body, headers)
    assert_error(status, data, expected, fragment)


@pytest.mark.parametrize("request_bytes, expected, fragment", [
    (b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
     b"Content-Length: 100000000\r\n\r\n{", 413, "the limit is 8,388,608"),
    (b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n", 411,
     "Content-Length"),
    (b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411, "not chunked"),
    (b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n", 400, "not a number"),
    ("POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \u00b2\r\n\r\n".encode(), 400,
     "not a number"),  # a digit to str.isdigit, not to int()
    ("POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: \u00b2\r\n\r\n"
     .encode(), 400, "not a number"),
    (b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + b"9" * 4000 + b"\r\n\r\n", 400,
     "not a number"),
    (b"BREW /pot HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501, "Unsupported method"),
    (b"GET /\x00 HTTP/1.1 junk\r\n\r\n", 400, ""),
])
def test_malformed_requests(web, request_bytes, expected, fragment):
    status, data = raw(web, request_bytes)
    assert_error(status, data, expected, fragment)
    assert call(web, "GET", "/api/models")[0] == 200


@pytest.mark.parametrize("method, path", [("POST", "/"), ("POST", "/api/nothing"), ("GET", "/api/models")])
def test_a_body_left_unread_closes_the_connection_so_no_request_hides_in_it(web, method, path):
    # A form on any site can POST text/plain; the body must never be read as a request of its own.
    hidden = json.dumps({"model": "gan", "digit": 3, "count": 1}).encode()
    body = (b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(hidden) + hidden)
    request = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
        sock.sendall(request)
        answers = b""
        while chunk := sock.recv(1 << 16):  # the server closes the connection after one answer
            answers += chunk
    assert answers.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in answers, answers[:300]
    assert call(web, "GET", "/api/models")[0] == 200


def test_a_client_too_slow_to_send_its_request_is_dropped(web):
    web.app.request_deadline_s = 1.0
    try:
        with socket.create_connection(("127.0.0.1", web.port), timeout=10) as sock:
            started = time.monotonic()
            dropped = False
            for byte in b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n":  # a byte every 0.2 s
                try:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)
                except OSError:
                    dropped = True
                    break
            dropped = dropped or sock.recv(1024) == b""
        assert dropped and time.monotonic() - started < 5
    finally:
        web.app.request_deadline_s = server.REQUEST_DEADLINE_S
    assert call(web, "GET", "/api/models")[0] == 200


def test_connections_beyond_the_cap_get_503_and_the_rest_are_served(web):
    capped = server.start(models=web.app.models)
    capped.connections = threading.BoundedSemaphore(2)
    try:
        idle = [socket.create_connection(("127.0.0.1", capped.port), timeout=10) for _ in range(2)]
        time.sleep(0.3)  # both accepted, each holding a thread
        status, response, data = call(capped, "GET", "/api/models")
        assert status == 503 and "too many connections" in data["error"]
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 10
        while call(capped, "GET", "/api/models")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        capped.shutdown()
        capped.server_close()


def test_generation_seconds_leave_out_the_wait_for_the_model(web):
    gan = web.app.models.generators["gan"]
    answers = []
    with gan.lock:  # another request is drawing
        thread = threading.Thread(target=lambda: answers.append(post(web, "/api/generate", {**GAN3, "count": 1})))
        thread.start()
        time.sleep(1.0)
    thread.join(30)
    status, _, data = answers[0]
    assert status == 200 and data["seconds"] < 0.5, data["seconds"]


def test_the_log_escapes_control_characters():
    assert server.printable("/\x1b[2J\x07path\n") == "/\\x1b[2J\\x07path\\n"


def test_a_body_over_the_limit_is_refused_with_413(web):
    status, response, data = post(web, "/api/classify", b"x" * (server.MAX_BODY_BYTES + 1))
    assert_error(status, data, 413, "the limit is 8,388,608")
    assert response.getheader("Connection") == "close"
    assert call(web, "GET", "/api/models")[0] == 200


def test_a_model_without_weights_leaves_the_rest_working(tmp_path):
    models = server.Models.load(weights_dir=tmp_path, classifier_weights=tmp_path / "classifier_model.weights.h5",
                                log=lambda line: None)
    app = server.start(models=models)
    try:
        status, _, data = call(app, "GET", "/api/models")
        assert status == 200 and not data["classifier"]["ready"]
        assert "python train_classifier.py" in data["classifier"]["error"]
        errors = {g["key"]: g["error"] for g in data["generators"] if not g["ready"]}
        assert "python train_gan.py --from-scratch" in errors["gan"]
        assert "python train_diffusion.py --mode 0" in errors["diffusion"]
        status, _, data = post(app, "/api/generate", GAN3)
        assert_error(status, data, 503, "python train_gan.py --from-scratch")
        status, _, data = post(app, "/api/classify", {"image": png_url(np.zeros((4, 4)))})
        assert_error(status, data, 503, "the classifier is not loaded")
        assert call(app, "GET", "/")[0] == 200
    finally:
        app.shutdown()
        app.server_close()


def test_teacher_asks_the_diffusion_model_alone_for_its_full_sampler(tmp_path, monkeypatch):
    # `analyze.py --serve --teacher`: stand-ins record what each load_sampler was asked for.
    asked = {}

    def stand_in(name, model_name):
        def load_sampler(weights_dir, precision, **options):
            asked[model_name] = options
            raise analyze.DataError("no weights here")
        return SimpleNamespace(__name__=name, MODEL_NAME=model_name, MAKE_COMMAND="", load_sampler=load_sampler)

    monkeypatch.setattr(analyze, "generator_modules",
                        lambda: [stand_in("train_diffusion", "diffusion"), stand_in("train_gan", "GAN")])
    models = server.Models.load(weights_dir=tmp_path, classifier_weights=tmp_path / "classifier_model.weights.h5",
                                log=lambda line: None, teacher=True)
    assert asked == {"diffusion": {"teacher": True}, "GAN": {}}
    # The page's command line draws what the page drew: with the same sampler.
    assert models.generators["diffusion"].command(8, 5, 2).endswith("--num-per-digit 2 --teacher")
    assert models.generators["gan"].command(8, 5, 2).endswith("--num-per-digit 2")
    server.Models.load(weights_dir=tmp_path, classifier_weights=tmp_path / "classifier_model.weights.h5",
                       log=lambda line: None)
    assert asked == {"diffusion": {}, "GAN": {}}  # by default: the distilled sampler where there is one


# -- the command ------------------------------------------------------------------------------

def test_a_busy_port_is_one_clean_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_script("analyze.py", "--serve", "--port", port, timeout=60)
    assert_clean_failure(result, f"port {port} on 127.0.0.1 is already in use")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_serve_prints_the_address_answers_and_stops_on_ctrl_c():
    process = subprocess.Popen([sys.executable, "analyze.py", "--serve", "--port", "0"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, errors = [], []
    readers = [threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True),
               threading.Thread(target=lambda: errors.extend(iter(process.stderr.readline, "")), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any("open http://" in line for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.2)
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", "".join(lines))
        assert url, lines
        connection = http.client.HTTPConnection("127.0.0.1", int(url.group(1)), timeout=30)
        connection.request("GET", "/api/models")
        assert connection.getresponse().status == 200
        # Ctrl-C while 32 diffusion digits are being drawn: the answer is sent before it stops.
        connection.close()
        in_flight = []
        request = json.dumps({"model": "diffusion", "digit": 2, "count": 32}).encode()
        connection = http.client.HTTPConnection("127.0.0.1", int(url.group(1)), timeout=60)
        connection.request("POST", "/api/generate", request, {"Content-Type": "application/json"})
        waiter = threading.Thread(target=lambda: in_flight.append(connection.getresponse()), daemon=True)
        waiter.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        waiter.join(120)
        assert in_flight and in_flight[0].status == 200 and json.loads(in_flight[0].read())["count"] == 32
        connection.close()
        try:
            process.wait(timeout=180)  # a loaded 2-core machine can take a while to exit TensorFlow
        except subprocess.TimeoutExpired:
            # Seen once on a heavily loaded machine: say whether Ctrl-C was seen ("stopping").
            pytest.fail(f"no exit 180 s after Ctrl-C; it printed: {''.join(lines)[-600:]!r} {''.join(errors)[-600:]!r}")
    finally:
        if process.poll() is None:
            process.kill()
    for reader in readers:
        reader.join(5)
    output, stderr = "".join(lines), "".join(errors)
    assert process.returncode == 0, (output, stderr)
    assert "Traceback" not in stderr and "stopping" in output, (output, stderr)
    for name in ("classifier", "diffusion", "GAN"):
        assert f"{name}: ready" in output, output
