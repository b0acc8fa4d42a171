"""benchmarks/diffusion_passes.py: the verdict on issue 38's quality bars (its --help is in
test_script_flags.py; a quick run would cost the suite a full sampler's tracing)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import diffusion_passes  # noqa: E402

FLOOR = {"fid": 0.5, "variety": 3.0}
AT_THE_BARS = {"requested_digit_accuracy": 0.995, "fid": 0.8, "variety": 2.85,
               "grey_pixels": 0.03, "tinted_digits": 0.01, "zero_pixels": 0.70}


def test_a_row_meets_the_bars_only_if_it_meets_every_one():
    assert diffusion_passes.meets_bars(AT_THE_BARS, FLOOR)  # each bar is inclusive
    for key, worse in (("requested_digit_accuracy", 0.9949), ("fid", 0.81), ("variety", 2.84),
                       ("grey_pixels", 0.031), ("tinted_digits", 0.011), ("zero_pixels", 0.69)):
        assert not diffusion_passes.meets_bars({**AT_THE_BARS, key: worse}, FLOOR), key
