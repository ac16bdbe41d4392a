"""The benchmark scripts run (tiny models, one round): slow, since the compiled steps compile."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_models.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_models", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_models"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--mlp-step", "--pixel-step"])
def test_the_step_benchmarks_run_and_report_ratios_within_each_group(mode, tmp_path):
    results = bench_module().main(["--quick", mode, "--threads", "1", "--json", str(tmp_path / "out.json")])
    names = [w["name"] for w in results["workloads"]]
    assert any("compile_step" in n for n in names) and (tmp_path / "out.json").is_file()
    assert results["matmul_size"] == 512
    assert all(w["x_skipvae_fp32"] > 0 for w in results["workloads"] if "official" not in w["name"])


def test_evaluation_seconds_of_a_run_add_up_from_the_measured_rates():
    """A paper-scale run's evaluation from bench_metrics' measurements: 100 epochs x 10k validation images at the
    chosen pass's rate, the 10k-image test pass, and the IW-NLL on the chosen images; training 100 x 50k images."""
    spec = importlib.util.spec_from_file_location("bench_metrics", BENCH.parent / "bench_metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cost = {"config": {"epochs": 100, "n_train": 50000, "n_valid": 10000, "n_test": 10000},
            "train_img_per_s_bf16": 100.0, "iw_nll_s_per_1000": {"fp32": 2000.0, "bf16": 500.0},
            "forward": [{"batch": 50, "precision": "fp32", "img_per_s": 200.0},
                        {"batch": 50, "precision": "bf16", "img_per_s": 1000.0}]}
    before = module.evaluation_seconds(cost, 50, False, False, None)
    assert before == {"train_s": 50000.0, "valid_s": 5000.0, "test_elbo_s": 50.0, "iw_nll_s": 20000.0,
                      "evaluation_s": 25050.0, "evaluation_over_training": 25050.0 / 50000.0}
    after = module.evaluation_seconds(cost, 50, True, True, 1000)
    assert (after["valid_s"], after["test_elbo_s"], after["iw_nll_s"]) == (1000.0, 10.0, 500.0)
    assert module.evaluation_seconds(cost, 50, False, False, 20000)["iw_nll_s"] == 20000.0  # at most the test set
