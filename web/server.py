"""The local web page: draw a digit and watch it read, upload a picture, watch digits drawn.

    python analyze.py --serve                   # http://127.0.0.1:8000/ until Ctrl-C
    python analyze.py --serve --port 8080
    python analyze.py --serve --host 0.0.0.0    # lets other machines in (a warning says so)
    python analyze.py --serve --teacher         # the diffusion model's full sampler, not the distilled one

serve() binds first (a busy port is one line at once), then loads the shipped models once:
the classifier and every generator of analyze.GENERATOR_SCRIPTS whose weights are present.
A missing model leaves the rest working; the page and /api/models say what makes it.
Standard library HTTP only. The page is the static files in web/ (a fixed list, read once
at start-up), and the JSON API:

    GET  /api/models     what loaded, what is missing and the command that makes it; limits
    POST /api/classify   {"image": "data:image/png;base64,...", "name": "drawing"}
                         -> digit, confidence, ten probabilities, the 28x28 digit it saw
    POST /api/generate   {"model": "diffusion" | "gan", "digit": 3, "count": 16, "seed": 42}
                         -> the digits (and the diffusion model's denoising steps) as PNG
                            sheets, what the classifier reads in each, the matching command

Pictures go through analyze_classifier's own conversion (decode_grey_image, then
to_mnist_digit), so the page answers as `analyze_classifier.py --image` does. Generation
calls each script's sampler with analyze.requested_labels(digit, count) and the seed, so
it draws the digits its command line draws. Nothing but numpy and the standard library is
imported until serve() (or Models.load) runs.
"""

import base64
import binascii
import ipaddress
import json
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

import analyze
from analyze import DataError

WEB_DIR = Path(__file__).resolve().parent
# The only files the server ever reads from disk, read once at start-up: URL -> (file, type).
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
# The page loads nothing from anywhere else, and the browser is told to hold it to that.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

# -- limits ---------------------------------------------------------------------------------
MAX_BODY_BYTES = 8 * 1024 * 1024   # a phone photo as base64 fits; anything bigger is refused (413)
MAX_PICTURE_PIXELS = 30_000_000    # declared size checked before decoding: no decompression bombs
MAX_JPEG_SCANS = 16                # a progressive JPEG has about 10
DEFAULT_COUNT = 16
MAX_COUNT = 64                     # 64 diffusion digits with their steps: about a second here
MAX_SEED = analyze.MAX_SEED         # what every script's --seed takes
MAX_NAME = 100
MAX_WAITING = 32                   # API requests in progress or queued for a model; more get 503
MAX_DECODING = 2                   # pictures decoded at once (memory: a photo is ~100 MB as floats)
REQUEST_TIMEOUT_S = 30             # a client that stalls mid-request is dropped
REQUEST_DEADLINE_S = 20            # a request's line, headers and body must all arrive within this
MAX_CONNECTIONS = 64               # connections served at once; more are answered 503 and closed
SHUTDOWN_WAIT_S = 10               # Ctrl-C lets a generation in progress finish for this long


class HttpError(Exception):
    """An answer other than 200: the status and the one-line message for {"error": ...}."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.message, self.headers = HTTPStatus(status), message, headers or {}


def bad_request(message):
    return HttpError(HTTPStatus.BAD_REQUEST, message)


def parse_length(text):
    """A Content-Length as a number of bytes, or None unless it is 1-18 ASCII digits."""
    text = (text or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def printable(text):
    """Text for the server's log with control characters escaped: a request cannot write to the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


# =========================================================================================
# Pictures to the browser: PNG (a pure-Python writer; grey 8-bit is all a digit needs)
# =========================================================================================

def encode_png(pixels):
    """uint8 H x W grey pixels -> PNG file bytes."""
    pixels = np.ascontiguousarray(pixels, np.uint8)
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), np.uint8)  # each row starts with its filter byte (0: none)
    rows[:, 1:] = pixels

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def png_data_url(pixels):
    return "data:image/png;base64," + base64.b64encode(encode_png(pixels)).decode("ascii")


def sheet(frames):
    """S x N x 28 x 28 digits -> one (S*28) x (N*28) picture: a row per step, a column per digit."""
    frames = np.asarray(frames, np.uint8)
    steps, count, height, width = frames.shape
    return frames.transpose(0, 2, 1, 3).reshape(steps * height, count * width)


# =========================================================================================
# Pictures from the browser
# =========================================================================================

def color_table_bytes(flags):
    """The length of a GIF colour table a screen's or frame's flags byte announces."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def first_gif_frame(data):
    """(a GIF cut after its first frame, the (width, height) of the canvas that frame needs), or
    (data, None) if no frame can be found. The page reads the first frame only, and a decoder
    given them all would make a canvas as large as the largest and decode every one."""
    try:
        width, height, flags = struct.unpack("<HHB", data[6:11])
        i = 13 + color_table_bytes(flags)
        while data[i] == 0x21:  # extensions: a label, then data sub-blocks up to an empty one
            i += 2
            while data[i]:
                i += data[i] + 1
            i += 1
        if data[i] != 0x2C:  # not an image descriptor
            return data, None
        left, top, frame_width, frame_height, flags = struct.unpack("<HHHHB", data[i + 1:i + 10])
        i += 10 + color_table_bytes(flags) + 1  # and the LZW code size
        while data[i]:
            i += data[i] + 1
        return data[:i + 1] + b";", (max(width, left + frame_width), max(height, top + frame_height))
    except (IndexError, struct.error):
        return data, None


def jpeg_size(data):
    """(width, height) of a JPEG's frame header, or None if its markers do not lead there."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        else:
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def bounded_picture(data, name):
    """The picture's bytes, checked before anything decodes them: one of the formats the page
    takes, a size that can be read and is within MAX_PICTURE_PIXELS, a JPEG of at most
    MAX_JPEG_SCANS scans (each one more decodes the whole picture again), and of a GIF only the
    first frame. A small file cannot make the server decode more than that."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        size = struct.unpack(">II", data[16:24])
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        data, size = first_gif_frame(data)
    elif data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        size = abs(width), abs(height)  # negative height: rows stored top-down
    elif data[:2] == b"\xff\xd8":
        size = jpeg_size(data)
        # Scan data stuffs every 0xFF byte, so each 0xFF 0xDA is a scan's start (or an embedded thumbnail's).
        scans = data.count(b"\xff\xda")
        if scans > MAX_JPEG_SCANS:
            raise bad_request(f"{name}: the JPEG has {scans} scans; the limit is {MAX_JPEG_SCANS}")
    else:
        raise bad_request(f"{name}: not a PNG, JPEG, GIF or BMP file")
    if size is None:
        raise bad_request(f"{name}: the picture's size cannot be read from its header")
    if size[0] * size[1] > MAX_PICTURE_PIXELS:
        raise bad_request(f"{name}: the picture is {size[0]}x{size[1]} pixels; the limit is "
                          f"{MAX_PICTURE_PIXELS // 1_000_000} megapixels")
    return data


def picture_bytes(text, name):
    """The bytes of a picture sent as a data URL (data:image/...;base64,...) or bare base64."""
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.endswith(";base64"):
            raise bad_request(f"{name}: \"image\" must be a base64 data URL (data:image/png;base64,...)")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{name}: \"image\" is not valid base64") from None
    if not data:
        raise bad_request(f"{name}: \"image\" is empty")
    return bounded_picture(data, name)


# =========================================================================================
# Models: loaded once, each call serialized by its own lock
# =========================================================================================

TEACHER_MODEL = "diffusion"  # the generator whose load_sampler takes teacher=True (its full sampler)


class Generator:
    """One generator script (analyze.GENERATOR_SCRIPTS) as the page uses it; `teacher`: the
    diffusion model's full sampler instead of its distilled one (`--teacher`)."""

    def __init__(self, module, teacher=False):
        self.module = module
        self.key = module.MODEL_NAME.lower()
        self.name = module.MODEL_NAME
        self.teacher = teacher and self.key == TEACHER_MODEL
        self.default_seed = int(getattr(module, "SEED", 0))
        self.sampler, self.error, self.num_steps = None, None, None
        self.lock = threading.Lock()  # a sampler is not thread-safe

    def command(self, digit, seed, count):
        """The command line that draws the same digits (both scripts take the shared flags)."""
        return (f"python {self.module.__name__}.py --generate --digit {digit} --seed {seed} "
                f"--num-per-digit {count}" + " --teacher" * self.teacher)

    def describe(self):
        return {"key": self.key, "name": self.name, "ready": self.sampler is not None, "error": self.error,
                "default_seed": self.default_seed, "steps": self.num_steps,
                "make_command": self.module.MAKE_COMMAND}


class Models:
    """The classifier and the generators, loaded and warmed up once."""

    def __init__(self):
        self.classifier, self.classifier_error, self.classifier_name = None, None, None
        self.classifier_lock = threading.Lock()
        self.generators = {}
        self._predict = None

    @classmethod
    def load(cls, weights_dir=analyze.WEIGHTS_DIR, classifier_weights=analyze.CLASSIFIER_WEIGHTS, log=print,
             precision="auto", teacher=False):
        """Load every model it can; a missing or broken one is recorded with its DataError.
        `teacher`: the diffusion model draws with its full sampler, not the distilled one."""
        import tensorflow as tf
        from train_classifier import load_classifier

        models = cls()
        started = time.perf_counter()
        try:
            models.classifier = load_classifier(classifier_weights)
            # model.predict costs milliseconds per call; a traced call on any batch size does not.
            models._predict = tf.function(lambda x: models.classifier(x, training=False),
                                          input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
            models.classifier_name = models.classifier.name.removeprefix("classifier_").upper()
            models._warm_up_reading()
            log(f"classifier: ready ({models.classifier_name}, {analyze.display_path(classifier_weights)})")
        except DataError as exc:
            models.classifier, models.classifier_error = None, str(exc)
            log(f"classifier: missing: {exc}")
        for module in analyze.generator_modules():
            generator = Generator(module, teacher)
            try:
                generator.sampler = module.load_sampler(weights_dir, precision,
                                                        **({"teacher": True} if generator.teacher else {}))
                # Two batch sizes: the second trace is shape-generic, so no request pays for tracing.
                for count in (1, 2):
                    digits, steps = generator.sampler.with_steps(analyze.requested_labels(0, count), 0)
                generator.num_steps = int(steps.shape[0])
                models.read(digits)
                log(f"{generator.name}: ready ({generator.num_steps} step{'s' * (generator.num_steps > 1)}"
                    + (", the full sampler: --teacher" if generator.teacher else "") + ")")
            except DataError as exc:
                generator.sampler, generator.error = None, str(exc)
                log(f"{generator.name}: missing: {exc}")
            models.generators[generator.key] = generator
        log(f"models loaded in {time.perf_counter() - started:.1f} s")
        return models

    def _warm_up_reading(self):
        stroke = np.full((280, 280), 255, np.uint8)
        stroke[60:220, 130:150] = 0  # a "1", through the whole picture path once
        self.read_picture(encode_png(stroke), "warm-up")
        self.read(np.zeros((2, 28, 28), np.uint8))

    def read(self, digits):
        """Probabilities (N x 10) for uint8 digits, or None without a classifier.

        The same input conversion as analyze.classify; a traced call instead of predict()."""
        if self.classifier is None:
            return None
        x = analyze.to_model_input(digits)
        with self.classifier_lock:
            return self._predict(x).numpy()

    def read_picture(self, data, name):
        """The digit in a picture, as `analyze_classifier.py --image` reads it."""
        import analyze_classifier

        grey = analyze_classifier.decode_grey_image(data, name)  # DataError: not a picture
        try:
            digit = analyze_classifier.to_mnist_digit(grey, name)
        except DataError as exc:  # the one thing it rejects: no ink at all
            return {"digit": None, "confidence": None, "probabilities": None, "seen": None,
                    "message": str(exc)}
        probabilities = self.read(digit[None])[0]
        best = int(probabilities.argmax())
        return {"digit": best, "confidence": round(float(probabilities[best]), 5),
                "probabilities": [round(float(p), 5) for p in probabilities], "seen": png_data_url(digit)}

    def generate(self, generator, digit, count, seed):
        labels = analyze.requested_labels(digit, count)
        with generator.lock:
            started = time.perf_counter()  # the generation's own time, not the wait for the lock
            digits, steps = generator.sampler.with_steps(labels, seed)
            seconds = time.perf_counter() - started
        probabilities = self.read(digits)
        read = None
        if probabilities is not None:
            read = [{"digit": int(p.argmax()), "confidence": round(float(p.max()), 4)} for p in probabilities]
        return {"model": generator.key, "name": generator.name, "digit": digit, "count": count, "seed": seed,
                "command": generator.command(digit, seed, count), "seconds": round(seconds, 3),
                "digits": png_data_url(sheet(digits[None])),
                "num_steps": int(steps.shape[0]),
                "steps": png_data_url(sheet(steps)) if steps.shape[0] > 1 else None,
                "read": read}

    def describe(self):
        return {"classifier": {"ready": self.classifier is not None, "name": self.classifier_name,
                               "error": self.classifier_error},
                "generators": [g.describe() for g in self.generators.values()],
                "limits": {"default_count": DEFAULT_COUNT, "max_count": MAX_COUNT, "max_seed": MAX_SEED,
                           "max_body_bytes": MAX_BODY_BYTES, "max_picture_pixels": MAX_PICTURE_PIXELS}}

    def wait_idle(self, timeout, log=print):
        """Take every model's lock (waiting up to `timeout` s in all), so no TensorFlow call is
        in flight when the interpreter exits."""
        deadline = time.monotonic() + timeout
        told = False
        for lock in [self.classifier_lock] + [g.lock for g in self.generators.values()]:
            if not lock.acquire(blocking=False):
                if not told:
                    log("finishing the generation in progress (Ctrl-C again to stop at once)")
                    told = True
                lock.acquire(timeout=max(0.0, deadline - time.monotonic()))


# =========================================================================================
# The API: checked JSON in, JSON out
# =========================================================================================

def _check_fields(body, allowed, required):
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad_request(f"unknown field {', '.join(map(json.dumps, unknown))}; "
                          f"expected {', '.join(map(json.dumps, allowed))}")
    for key in required:
        if key not in body:
            raise bad_request(f"\"{key}\" is required")


def _integer(body, key, low, high, default):
    value = body.get(key, default)
    # JSON true is a Python int, and 3.0 is not a digit: only a plain integer passes.
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"\"{key}\" must be an integer {low}-{high}, got {json.dumps(value)[:40]}")
    if not low <= value <= high:
        raise bad_request(f"\"{key}\" must be {low}-{high}, got {value}")
    return value


def _string(body, key, default=None):
    value = body.get(key, default)
    if not isinstance(value, str):
        raise bad_request(f"\"{key}\" must be a string, got {json.dumps(value)[:40]}")
    return value


def api_models(app, body):
    return app.models.describe()


def api_classify(app, body):
    _check_fields(body, ("image", "name"), ("image",))
    name = "".join(c for c in _string(body, "name", "image") if c.isprintable())[:MAX_NAME] or "image"
    image = _string(body, "image")
    if app.models.classifier is None:
        raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, f"the classifier is not loaded: {app.models.classifier_error}")
    data = picture_bytes(image, name)
    with app.decoding:
        started = time.perf_counter()
        try:
            answer = app.models.read_picture(data, name)
        except DataError as exc:
            raise bad_request(str(exc)) from None
    return {**answer, "ms": round(1000 * (time.perf_counter() - started), 1)}


def api_generate(app, body):
    _check_fields(body, ("model", "digit", "count", "seed"), ("model", "digit"))
    key = _string(body, "model")
    generator = app.models.generators.get(key.lower())
    if generator is None:
        raise bad_request(f"unknown model {json.dumps(key)[:40]}; expected "
                          f"{' or '.join(map(json.dumps, app.models.generators))}")
    digit = _integer(body, "digit", 0, 9, None)
    count = _integer(body, "count", 1, MAX_COUNT, DEFAULT_COUNT)
    seed = _integer(body, "seed", 0, MAX_SEED, generator.default_seed)
    if generator.sampler is None:
        raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, f"the {generator.name} model is not loaded: {generator.error}")
    return app.models.generate(generator, digit, count, seed)


API_ROUTES = {  # path -> (method, handler)
    "/api/models": ("GET", api_models),
    "/api/classify": ("POST", api_classify),
    "/api/generate": ("POST", api_generate),
}


class App:
    """What every request shares: the models, the page's files, and the limits in force."""

    def __init__(self, models, loopback_only=True, quiet=False):
        self.models, self.loopback_only, self.quiet = models, loopback_only, quiet
        self.static = {}
        for url, (name, content_type) in STATIC_FILES.items():
            try:
                self.static[url] = ((WEB_DIR / name).read_bytes(), content_type)
            except OSError:
                raise DataError(f"web/{name} is missing; restore it with `git checkout web/`") from None
        self.waiting = threading.BoundedSemaphore(MAX_WAITING)
        self.decoding = threading.BoundedSemaphore(MAX_DECODING)
        self.request_deadline_s = REQUEST_DEADLINE_S
        self.answering = 0  # requests being answered, which a shutdown lets finish (wait_for_answers)
        self.answered = threading.Condition()
        self.stopping = False

    def wait_for_answers(self, timeout):
        """Stop taking requests and wait (up to `timeout` s) for those in flight to be answered."""
        with self.answered:
            self.stopping = True
            self.answered.wait_for(lambda: self.answering == 0, timeout)

    def log(self, line):
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)


# =========================================================================================
# HTTP
# =========================================================================================

def _is_loopback_name(host):
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the page's many small requests share a connection
    server_version = "mnist_models"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S
    # Headers and body go out as two writes; with Nagle's algorithm the second one waits for
    # the client's delayed ACK (40 ms on Linux) on a keep-alive connection.
    disable_nagle_algorithm = True
    linger = False  # set when a body is refused unread (see drain)

    def do_GET(self):
        self.route()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def handle_one_request(self):
        # A client that sends its request a byte at a time would hold a thread for ever.
        self.deadline = threading.Timer(self.server.app.request_deadline_s, self.drop_slow_client)
        self.deadline.daemon = True
        self.deadline.start()
        try:
            super().handle_one_request()
        finally:
            self.deadline.cancel()

    def drop_slow_client(self):
        self.server.app.log(f"dropped {self.client_address[0]}: its request took over "
                            f"{self.server.app.request_deadline_s:g} s to arrive")
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def route(self):
        started = time.perf_counter()
        status = HTTPStatus.INTERNAL_SERVER_ERROR
        app = self.server.app
        self.body_read = False  # an answer sent before the body is read closes the connection (send_bytes)
        if not self.has_body():
            self.deadline.cancel()  # the request is all here
        with app.answered:
            app.answering += 1
        try:
            if app.stopping:
                raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "the server is stopping")
            status = self.answer(app)
        except HttpError as exc:
            status = exc.status
            self.send_json(exc.status, {"error": exc.message}, exc.headers)
            if self.linger:
                self.drain()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            status = "- (the client hung up)"
            return
        except Exception as exc:  # a bug, not the client's fault: say so without a traceback
            app.log(f"error answering {self.command} {printable(self.path[:100])}: "
                    + "".join(traceback.format_exception_only(exc)).strip())
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            self.send_json(status, {"error": "internal error; the server's log has the details"})
        finally:
            with app.answered:
                app.answering -= 1
                app.answered.notify_all()
            app.log(f"{self.command} {printable(self.path[:100])} {status if isinstance(status, str) else int(status)} "
                    f"{1000 * (time.perf_counter() - started):.0f} ms")

    def answer(self, app):
        host = self.headers.get("Host")
        if app.loopback_only and host is not None:
            # A page on another site that resolves its own name to 127.0.0.1 (DNS rebinding)
            # would send its own name here; only this machine's names are accepted.
            name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
            if not _is_loopback_name(name):
                raise bad_request(f"unexpected Host {host[:60]!r}; open the page at 127.0.0.1 or localhost")
        try:
            path = urlsplit(self.path).path
        except ValueError:
            path = None
        if path in app.static:
            if self.command not in ("GET", "HEAD"):
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} answers GET", {"Allow": "GET, HEAD"})
            body, content_type = app.static[path]
            headers = {"Cache-Control": "no-cache"}
            if content_type.startswith("text/html"):
                headers.update({"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"})
            self.send_bytes(HTTPStatus.OK, body, content_type, headers)
            return HTTPStatus.OK
        if path not in API_ROUTES:
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")
        method, handler = API_ROUTES[path]
        if self.command != method and not (method == "GET" and self.command == "HEAD"):
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} answers {method}",
                            {"Allow": "GET, HEAD" if method == "GET" else method})
        if method == "GET":
            self.send_json(HTTPStatus.OK, handler(app, None))
            return HTTPStatus.OK
        body = self.read_json()
        if not app.waiting.acquire(blocking=False):
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "the server is busy; try again in a moment",
                            {"Retry-After": "1"})
        try:
            payload = handler(app, body)
        finally:
            app.waiting.release()
        self.send_json(HTTPStatus.OK, payload)
        return HTTPStatus.OK

    @staticmethod
    def too_large(length):
        return HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"the request body is {length:,} bytes; the limit is {MAX_BODY_BYTES:,}")

    def declared_length(self):
        """The Content-Length as a number of bytes, None if there is none, or a 400 (ASCII digits only)."""
        text = self.headers.get("Content-Length")
        length = parse_length(text)
        if text is not None and length is None:
            self.close_connection = True
            raise bad_request(f"Content-Length {text[:20]!r} is not a number of bytes")
        return length

    def has_body(self):
        return bool(self.headers.get("Transfer-Encoding")) or self.headers.get("Content-Length", "0").strip() != "0"

    def handle_expect_100(self):
        """curl asks before sending a large body: refuse a too-large one before it is sent."""
        length = parse_length(self.headers.get("Content-Length"))
        if length is not None and length > MAX_BODY_BYTES:
            self.close_connection = True
            error = self.too_large(length)
            self.send_json(error.status, {"error": error.message})
            self.server.app.log(f"{self.command} {printable(self.path[:100])} {int(error.status)} (refused before sending)")
            return False
        return super().handle_expect_100()

    def drain(self):
        """After refusing a body unread, take in (and drop) what the client is still sending,
        for a few seconds at most: a client that sends its whole body before reading the
        answer then reads the 413 instead of finding the connection reset."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1)
            received, deadline = 0, time.monotonic() + 3
            while received < 4 * MAX_BODY_BYTES and time.monotonic() < deadline:
                chunk = self.connection.recv(1 << 16)
                if not chunk:
                    break
                received += len(chunk)
        except OSError:
            pass

    def read_json(self):
        """The request body as a JSON object, within the size limit."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length (not chunked)")
        length = self.declared_length()
        if length is None:
            self.close_connection = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is never read: the connection cannot be reused
            self.linger = True
            raise self.too_large(length)
        data = self.rfile.read(length)
        self.body_read = True
        self.deadline.cancel()
        if len(data) < length:
            self.close_connection = True
            raise bad_request("the request body is shorter than its Content-Length")
        if self.headers.get_content_type() != "application/json":
            # Also keeps other sites' plain HTML forms out: they cannot send this type.
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON with Content-Type: application/json")
        try:
            body = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise bad_request("the request body is not UTF-8 text") from None
        except RecursionError:
            raise bad_request("the request body is nested too deeply") from None
        except ValueError as exc:
            raise bad_request(f"the request body is not valid JSON ({str(exc).splitlines()[0][:80]})") from None
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        return body

    def send_json(self, status, payload, headers=None):
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.send_bytes(status, body, "application/json", {"Cache-Control": "no-store", **(headers or {})})

    def send_bytes(self, status, body, content_type, headers=None):
        if not getattr(self, "body_read", True) and self.has_body():
            # Left unread on a kept-alive connection, the body would be read as the next request:
            # a page on any site could hide a request of its own there (request smuggling).
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a malformed request line, headers too long, ...) as JSON."""
        self.close_connection = True
        try:
            short = HTTPStatus(code).phrase
        except ValueError:
            short = "error"
        self.server.app.log(f"{getattr(self, 'command', None) or '-'} {printable(getattr(self, 'path', '')[:100])} "
                            f"{code} ({message or short})")
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # answer an unparsable request line with a status line all the same
        self.send_json(code, {"error": message or short})

    def version_string(self):
        return self.server_version

    def log_request(self, code="-", size="-"):
        pass  # route() logs one line per request, with its time

    def log_message(self, format, *args):
        self.server.app.log(printable(format % args))


class WebServer(ThreadingHTTPServer):
    daemon_threads = True  # an idle keep-alive connection never holds up the exit
    allow_reuse_port = False  # another server on the port must make ours fail, not share it
    request_queue_size = 64

    def __init__(self, address, family, app):
        self.address_family = family
        self.app = app
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)  # a thread each
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        if not self.connections.acquire(blocking=False):
            body = b'{"error":"too many connections; try again in a moment"}'
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def server_bind(self):
        # HTTPServer.server_bind looks up the host's full DNS name, which can stall offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            self.app.log(f"error on a connection from {client_address[0]}: {exc!r}")

    @property
    def port(self):
        return self.server_address[1]

    @property
    def url(self):
        host = self.server_address[0]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if self.address_family == socket.AF_INET else "::1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"


def bind(host, port, models=None, quiet=False):
    """A WebServer bound to host:port (not yet answering), or DataError in one line."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise DataError(f"--host {host!r}: cannot listen there ({exc.strerror})") from None
    loopback = _is_loopback_name(address[0])
    try:
        return WebServer(address, family, App(models, loopback_only=loopback, quiet=quiet))
    except OSError as exc:
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise DataError(f"port {port} on {host} is already in use; stop what is using it "
                            "or choose another with --port") from None
        raise DataError(f"cannot listen on {host} port {port} ({exc.strerror or exc})") from None


def start(host="127.0.0.1", port=0, models=None, quiet=True):
    """Serve in a background thread (for tests and benchmarks); returns the WebServer.

    Stop it with server.shutdown(); server.server_close()."""
    server = bind(host, port, models, quiet)
    threading.Thread(target=server.serve_forever, name="web-server", daemon=True).start()
    return server


def serve(host="127.0.0.1", port=8000, weights_dir=analyze.WEIGHTS_DIR,
          classifier_weights=analyze.CLASSIFIER_WEIGHTS, precision="auto", teacher=False):
    """Load the models and answer until Ctrl-C (`python analyze.py --serve`); `teacher`: the
    diffusion model's full sampler instead of the distilled one (`--serve --teacher`).

    Like every script, it ends with one `error: ...` line on bad input (a busy port, a host
    it cannot listen on)."""
    try:
        server = bind(host, port)  # first: a busy port fails at once, not after loading the models
    except DataError as exc:
        analyze.fail(exc)
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        # `kill` stops it as Ctrl-C does; and Ctrl-C always does, even when it was started from a
        # shell's background job, which leaves SIGINT ignored and Python then does not handle it.
        previous_handlers = {signal.SIGTERM: signal.signal(signal.SIGTERM, _stop_on_sigterm),
                             signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        if not server.app.loopback_only:
            print(f"warning: listening on {host}: any machine that can reach this one can use the page "
                  "and its API (no password); use the default 127.0.0.1 to keep it to this machine",
                  flush=True)
        print("loading the models...", flush=True)
        server.app.models = Models.load(weights_dir, classifier_weights,
                                        log=lambda line: print("  " + line, flush=True), precision=precision,
                                        teacher=teacher)
        print(f"open {server.url} in a browser (Ctrl-C to stop)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    finally:
        server.server_close()
        if server.app.models is not None:
            try:
                if server.app.answering:
                    print("answering the requests in progress (Ctrl-C again to stop at once)", flush=True)
                server.app.wait_for_answers(SHUTDOWN_WAIT_S)
                server.app.models.wait_idle(SHUTDOWN_WAIT_S, log=lambda line: print(line, flush=True))
            except KeyboardInterrupt:
                pass
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt
