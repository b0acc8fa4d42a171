"""benchmarks/unet_pass.py: one row per network and number format, the first at 1.00x; bad configs refused."""

from conftest import run_script

TINY = '{"widths": [8, 16], "embedding_dim": 16}'


def test_times_each_network_and_refuses_configs_the_builder_does_not_take():
    attending = '{"widths": [8, 16], "embedding_dim": 16, "attention": true, "self_condition": true, "ink": true}'
    result = run_script("benchmarks/unet_pass.py", "--configs", TINY, attending, "--batch", "4", "--repeats", "2")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "float32" in line]
    assert len(rows) == 2 and rows[0].rstrip().endswith("1.00x") and '"attention": true' in rows[1], result.stdout
    for bad, why in [("[1, 2]", "expected a JSON object"), ('{"heads": 4}', "unknown config key 'heads'"),
                     ("{", "not JSON"), ('{"widths": 64}', "config 'widths' should be list"),
                     ('{"conditioning": "film"}', "conditioning must be one of")]:
        result = run_script("benchmarks/unet_pass.py", "--configs", bad)
        assert result.returncode == 2 and why in result.stderr, result.stderr
