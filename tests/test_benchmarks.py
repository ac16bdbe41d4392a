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
