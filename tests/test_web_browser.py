"""The web page in a real browser: draw digits with real pointer input, upload a picture,
generate digits, and save a screenshot of it all as generated_digits/web_page.png.

Driver: Selenium driving Debian's headless Chromium (packages `chromium` and
`chromium-driver`) through Service("/usr/bin/chromedriver"). Chosen over Playwright because
Selenium is a small pure-Python wheel that talks to the system's chromedriver, so nothing is
downloaded at run time (Selenium Manager only runs when no driver path is given), and
Debian keeps the browser and the driver at the same version. Playwright expects its own
browser builds, fetched by `playwright install`, which cannot be reached here; pointing it at
/usr/bin/chromium works only as an untested combination of its driver and another Chromium.
W3C pointer actions give real pointerdown/move/up events for a mouse, a finger and a pen.

Skipped, with the reason, when selenium, chromium or chromedriver is missing (.ci/run
installs all three).
"""

import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import analyze
import train_diffusion

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = analyze.FIGURES_DIR / "web_page.png"
SAMPLE = analyze.DATASET_DIR / "samples" / "photo_4_4.jpg"  # a photo of a handwritten 4
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    # No internet here: without these Chromium keeps trying to reach its update and sync services.
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--window-size=1280,1000", "--hide-scrollbars", "--force-color-profile=srgb",
)
VIEWPORT = (1280, 1000)

# Pad coordinates (offsets from the pad's centre, in CSS pixels) of each digit's strokes.
SEVEN = [[(-75, -85), (80, -85), (-5, 95)]]
ONE = [[(5, -95), (0, 95)]]


def _missing_browser():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (python3 -m pip install selenium)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            return f"{path} not found (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def page_server(web_server):
    return web_server


@pytest.fixture(scope="module")
def browser(request):
    reason = _missing_browser()
    if reason:  # checked before the models load: a machine without a browser skips at once
        warnings.warn(f"browser tests skipped: {reason}")
        pytest.skip(reason)
    page_server = request.getfixturevalue("page_server")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="mnist-web-chromium-")
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})
    driver.get(page_server.url)
    wait_for(driver, lambda d: d.find_element("css selector", "body").get_attribute("data-ready") == "true")
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, condition, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def css(driver, selector):
    return driver.find_element("css selector", selector)


def draw(driver, strokes, kind="mouse"):
    """Draw strokes on the pad with W3C pointer actions of the given kind (mouse, touch, pen),
    moving in small steps so the page gets a stream of pointermove events as from a hand."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    pad = css(driver, "#pad")
    kinds = {"mouse": interaction.POINTER_MOUSE, "touch": interaction.POINTER_TOUCH, "pen": interaction.POINTER_PEN}
    actions = ActionBuilder(driver, mouse=PointerInput(kinds[kind], kind), duration=10)
    for stroke in strokes:
        actions.pointer_action.move_to(pad, *stroke[0]).pointer_down()
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
            n = max(2, int(np.hypot(x1 - x0, y1 - y0) // 12))
            for t in np.linspace(0, 1, n + 1)[1:]:
                actions.pointer_action.move_to(pad, round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0)))
        actions.pointer_action.pointer_up()
    actions.perform()


def drawn_answer(driver):
    """The digit the Draw part shows once reading has settled ('' for none)."""
    answer = css(driver, "#draw-answer")
    wait_for(driver, lambda d: "shown" in answer.get_attribute("class") or "blank" in answer.get_attribute("class"))
    time.sleep(0.3)  # a read sent mid-stroke may still be on its way; the page shows the newest
    wait_for(driver, lambda d: "waiting" not in answer.get_attribute("class"))
    return answer.get_attribute("data-digit")


def test_drawing_a_seven_with_the_mouse_is_read_as_7(browser):
    css(browser, "#clear").click()
    draw(browser, SEVEN, "mouse")
    assert drawn_answer(browser) == "7"
    assert css(browser, "#draw-answer .big-digit").text == "7"
    assert "sure" in css(browser, "#draw-answer .verdict-text").text
    assert css(browser, "#draw-answer .seen img").is_displayed()  # the 28x28 digit it saw
    heights = [bar.value_of_css_property("height")
               for bar in browser.find_elements("css selector", "#draw-answer .fill")]
    assert len(heights) == 10
    assert css(browser, "#draw-answer .bar.top .label").text == "7"


def test_clear_then_nothing_drawn_says_draw_a_digit(browser):
    css(browser, "#clear").click()
    assert css(browser, "#draw-answer .verdict-text").text == "Draw a digit"
    assert css(browser, "#draw-answer").get_attribute("data-digit") == ""


@pytest.mark.parametrize("kind", ["touch", "pen"])
def test_drawing_with_a_finger_or_a_pen(browser, kind):
    css(browser, "#clear").click()
    draw(browser, ONE, kind)
    assert drawn_answer(browser) == "1"


def test_uploaded_picture_is_read_as_the_script_reads_it(browser, page_server):
    expected = page_server.app.models.read_picture(SAMPLE.read_bytes(), SAMPLE.name)
    css(browser, "#file").send_keys(str(SAMPLE))
    answer = css(browser, "#upload-answer")
    wait_for(browser, lambda d: answer.get_attribute("data-digit"))
    assert answer.get_attribute("data-digit") == str(expected["digit"]) == "4"
    assert css(browser, "#preview").is_displayed()


def generate(driver, digit, model, count=16):
    css(driver, f"label[for='digit-{digit}']").click()
    css(driver, f"label[for='model-{model}']").click()
    count_box = css(driver, "#count")
    count_box.clear()
    count_box.send_keys(str(count))
    css(driver, "#generate").click()
    keys = ["diffusion", "gan"] if model == "both" else [model]
    for key in keys:
        wait_for(driver, lambda d: css(d, f".panel[data-model='{key}']").get_attribute("data-state")
                 in ("done", "failed"), timeout=60)
    return {key: css(driver, f".panel[data-model='{key}']") for key in keys}


def test_gan_threes_come_back_as_16_pictures(browser):
    panel = generate(browser, 3, "gan")["gan"]
    assert panel.get_attribute("data-state") == "done", panel.text
    assert len(panel.find_elements("css selector", ".tile canvas")) == 16
    assert "reads 16 of 16 as 3" in panel.find_element("css selector", ".summary").text
    assert "python train_gan.py --generate --digit 3 --seed 42 --num-per-digit 16" in panel.text
    assert not panel.find_element("css selector", ".film").is_displayed()  # one step: no filmstrip


def test_screenshot_with_all_three_parts(browser):
    """A picture for the README: a drawn 7, an uploaded 4, and both models' 8s with the
    diffusion model's denoising filmstrip."""
    css(browser, "#clear").click()
    draw(browser, SEVEN, "mouse")
    assert drawn_answer(browser) == "7"
    panels = generate(browser, 8, "both", count=16)
    for key, panel in panels.items():
        assert panel.get_attribute("data-state") == "done", (key, panel.text)
        assert len(panel.find_elements("css selector", ".tile canvas")) == 16
    diffusion = panels["diffusion"]
    wait_for(browser, lambda d: diffusion.get_attribute("data-playing") == "false")
    steps = train_diffusion.STEPS
    assert len(diffusion.find_elements("css selector", ".frame canvas")) == steps
    assert diffusion.find_element("css selector", ".step-label").text.startswith(f"step {steps} of {steps}")
    # Select a sample: the filmstrip follows it.
    diffusion.find_elements("css selector", ".tile")[5].click()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(SCREENSHOT))
    import tensorflow as tf

    picture = tf.io.decode_png(SCREENSHOT.read_bytes()).numpy()
    assert picture.shape[:2] == VIEWPORT[::-1]


def test_no_errors_in_the_browser_console(browser):
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
