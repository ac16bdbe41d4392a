"""Training throughput of the skipvae models on this machine's CPU.

    python benchmarks/bench_models.py                 # table; about 10 minutes on 2 cores (SA-VAE at K=20 dominates)
    python benchmarks/bench_models.py --json out.json --compile

Measures
  (a) the machine's fp32 matmul rate: torch.mm of 2048 x 2048 matrices, measured at the start and after
      every timing round (the best of all is the rate the fractions refer to);
  (b) training images/s (forward + backward + Adam step, batch 50) of the PixelCNN VAE and Skip-VAE at the
      official sizes (latent 20, 8 layers x 32 channels, 3x3 kernels), the model's FLOPs per step (counted
      by torch.utils.flop_counter) and the fraction of the matmul rate that the step reaches; next to them the
      same model (same parameters, same function) run the way the official code runs it: NCHW tensors,
      explicit pads and crops, concatenations, plain gates (`official_style_loss`);
  (c) the cost of an SA-VAE training step (K = 20 SVI steps, exact second derivatives) relative to a VAE step;
  (d) the weak MLP model (paper sizes), and the LSTM VAE, Skip-VAE and SA-VAE at the cpu profile (its sizes,
      sentence length and SVI steps): the cost that sized the cpu profile of the text models.
Timings on a shared machine are noisy: every number is the best over `--repeats` rounds in which the
configurations take turns (so they see the same load); medians are kept in the JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from skipvae.config import make_config
from skipvae.models import build_model
from skipvae.models.vae import kl_to_prior, reparameterize

OFFICIAL_IMG_S = {"vae": 75.0, "skip-vae": 67.0}  # the official implementation on this machine (brief)


# ---------------------------------------------------------------------------------------------------------
# The official code's way of computing the same PixelCNN VAE (reference for the speed-up)
# ---------------------------------------------------------------------------------------------------------

def official_style_layer(layer, v, h):
    """One gated layer as `models_img_skip.GatedMaskedConv2d` computes it: pad, conv, pad, crop, cat."""
    p, C = layer.pad, layer.channels
    v_out = F.conv2d(F.pad(v, (p, p, p, 0)), layer.v_conv.weight, layer.v_conv.bias)
    v_out = F.pad(v_out, (0, 0, 1, 0))[:, :, :-1, :]
    v_new = torch.tanh(v_out[:, :C]) * torch.sigmoid(v_out[:, C:])
    vh = layer.vh_conv(v_out)
    h_out = F.conv2d(F.pad(h, (p, 0, 0, 0)), layer.h_conv.weight, layer.h_conv.bias)
    if layer.first:
        h_out = F.pad(h_out, (1, 0, 0, 0))[:, :, :, :-1]
    h_out = h_out + vh
    h_out = torch.tanh(h_out[:, :C]) * torch.sigmoid(h_out[:, C:])
    h_new = layer.h_out(h_out)
    if not layer.first:
        h_new = h_new + layer.h_res(h)
    return v_new, h_new


def official_style_loss(model, x, beta: float = 1.0):
    """Batch-mean negative ELBO of a PixelCNN VAE, computed as the official code does (NCHW throughout)."""
    enc, dec = model.encoder, model.decoder
    code = enc.cnn(x).flatten(1)
    mu, logvar = enc.mean(code), enc.logvar(code)
    z = reparameterize(mu, logvar)
    B = x.shape[0]
    w, b = dec.z_maps.weight.split(784), dec.z_maps.bias.split(784)
    v = h = x
    for i, layer in enumerate(dec.layers):
        if i == 0 or dec.skip:
            z_map = F.linear(z, w[i], b[i]).view(B, 1, 28, 28)
            v, h = torch.cat([v, z_map], 1), torch.cat([h, z_map], 1)
        v, h = official_style_layer(layer, v, h)
    if dec.skip:
        h = torch.cat([h, F.linear(z, w[-1], b[-1]).view(B, 1, 28, 28)], 1)
    logits = dec.out_conv(h)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    return (rec + beta * kl_to_prior(mu, logvar)).mean()


# ---------------------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------------------

def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best fp32 torch.mm rate in GFLOP/s (2 n^3 flops per product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class Workload:
    """One training configuration: `step()` runs forward + backward + Adam step on a fixed batch."""

    def __init__(self, name: str, model, batch, loss_fn=None, unit: str = "img"):
        self.name, self.model, self.batch, self.unit = name, model, batch, unit
        self.loss_fn = loss_fn or (lambda m, x: m(x)["loss"])
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.times: list[float] = []
        self.flops: int | None = None
        self.extra: dict = {}

    @property
    def size(self) -> int:
        return self.batch.shape[0]

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_fn(self.model, self.batch).backward()
        self.optimizer.step()

    def count_flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.loss_fn(self.model, self.batch).backward()
        self.optimizer.zero_grad(set_to_none=True)
        self.flops = counter.get_total_flops()
        return self.flops

    def result(self, peak_gflops: float) -> dict:
        best, median = min(self.times), statistics.median(self.times)
        out = {"name": self.name, "best_step_s": best, "median_step_s": median, "steps_timed": len(self.times),
               f"{self.unit}_per_s": self.size / best, f"{self.unit}_per_s_median": self.size / median}
        if self.flops is not None:
            out["gflop_per_step"] = self.flops / 1e9
            out["gflop_per_s"] = self.flops / best / 1e9
            out["fraction_of_matmul_peak"] = self.flops / best / 1e9 / peak_gflops
        return out | self.extra


def run_rounds(workloads: list[Workload], repeats: int, steps: int, warmup: int = 2, probe=None) -> None:
    """Warm every workload up, then `repeats` rounds in which each times `steps` steps in turn; `probe()` is
    called after every round (the matmul rate, so that it is measured under the same load)."""
    for w in workloads:
        for _ in range(warmup):
            w.step()
    for _ in range(repeats):
        for w in workloads:
            w.times.extend(_timed(w.step) for _ in range(steps))
        if probe is not None:
            probe()


def time_against(sa: Workload, vae: Workload, steps: int) -> None:
    """Time `steps` steps of the (slow) SA workload, each right after a step of `vae` (same load), and store its
    cost against the best VAE step and against the VAE step timed next to it (median)."""
    ratios = []
    for _ in range(steps):
        t_vae = _timed(vae.step)
        sa.times.append(_timed(sa.step))
        ratios.append(sa.times[-1] / t_vae)
    sa.extra["cost_vs_vae_step"] = min(sa.times) / min(vae.times)
    sa.extra["cost_vs_adjacent_vae_step"] = statistics.median(ratios)


def images(batch: int = 50, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((batch, 1, 28, 28), 0.13), generator=g)


def sentences(batch: int, length: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """<s> w_1 .. w_n </s> <pad>.. with n uniform in [length/2, length]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, length + 2, dtype=torch.long)
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=g)
    for i, n in enumerate(lengths.tolist()):
        x[i, 0], x[i, n + 1] = 1, 2
        x[i, 1:n + 1] = torch.randint(3, vocab, (n,), generator=g)
    return x


def pixelcnn(model: str, quick: bool, **overrides):
    torch.manual_seed(0)
    profile = "smoke" if quick else "paper"
    return build_model(make_config("mnist", model, profile, **overrides))


def compiled_workload(name: str, model, batch) -> Workload:
    """torch.compile'd model (optional): compile time in `extra`, or the reason it is unavailable."""
    try:
        compiled = torch.compile(model)
        w = Workload(name, compiled, batch)
        w.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        w.extra["compile_s"] = _timed(w.step)
        return w
    except Exception as e:  # noqa: BLE001 - any failure means "not available here"; eager is the default
        print(f"torch.compile unavailable for {name}: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="rounds of timing (best is reported)")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per workload and round")
    ap.add_argument("--svi-steps", type=int, default=20, help="K of the SA-VAE step (paper: 20)")
    ap.add_argument("--sa-steps", type=int, default=2, help="timed SA-VAE steps (each is slow)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd PixelCNN models")
    ap.add_argument("--quick", action="store_true", help="tiny models, one round: checks the script runs")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats, args.steps, args.sa_steps, args.svi_steps = 1, 1, 1, 2

    n_mm = 512 if args.quick else 2048
    peaks = [matmul_gflops(n_mm)]
    probe = lambda: peaks.append(matmul_gflops(n_mm, repeats=3))  # noqa: E731
    x = images(8 if args.quick else 50)

    # (b) PixelCNN VAE / Skip-VAE, optimised vs the official code's way, same parameters and batch.
    pixel = []
    for model_name in ("vae", "skip-vae"):
        model = pixelcnn(model_name, args.quick)
        reference = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
        pixel.append(Workload(f"pixelcnn {model_name}", model, x))
        pixel.append(Workload(f"pixelcnn {model_name} (official-style)", reference, x, loss_fn=official_style_loss))
    for w in pixel:
        w.count_flops()
    if args.compile:
        for model_name, eager in (("vae", pixel[0]), ("skip-vae", pixel[2])):
            w = compiled_workload(f"pixelcnn {model_name} (torch.compile)", pixelcnn(model_name, args.quick), x)
            if w is not None:
                w.flops = eager.flops
                pixel.append(w)
    run_rounds(pixel, args.repeats, args.steps, probe=probe)

    # (c) SA-VAE at K = svi_steps against the VAE step.
    sa = Workload(f"pixelcnn sa-vae K={args.svi_steps}", pixelcnn("sa-vae", args.quick, svi_steps=args.svi_steps), x)
    time_against(sa, pixel[0], args.sa_steps)

    # (d) MLP (paper sizes) and the LSTM at the cpu profile (its sizes, its sentence length, its SVI steps): the
    # measurement that sized the cpu profile of the text models.
    others = []
    for model_name in ("vae", "skip-vae"):
        torch.manual_seed(0)
        others.append(Workload(f"mlp {model_name}", build_model(make_config(
            "mnist", model_name, "smoke" if args.quick else "paper", arch="mlp")), x))
    vocab = 100 if args.quick else 20000
    text_cfg = {m: make_config("yahoo", m, "smoke" if args.quick else "cpu") for m in ("vae", "skip-vae", "sa-vae")}
    text = sentences(text_cfg["vae"].batch_size, text_cfg["vae"].max_len, vocab)
    lstm = {}
    for model_name, cfg in text_cfg.items():
        torch.manual_seed(0)
        name = f"lstm {model_name}" + (f" K={cfg.svi_steps}" if cfg.semi_amortized else "")
        lstm[model_name] = Workload(f"{name} (emb {cfg.emb_dim}, hidden {cfg.dec_hidden}, V {vocab})",
                                    build_model(cfg, vocab_size=vocab), text, unit="sent")
    others += [lstm["vae"], lstm["skip-vae"]]
    for w in others:
        w.count_flops()
    run_rounds(others, args.repeats, args.steps, probe=probe)
    time_against(lstm["sa-vae"], lstm["vae"], args.sa_steps)
    others.append(lstm["sa-vae"])
    peak = max(peaks)

    results = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "settings": vars(args) | {"json": str(args.json) if args.json else None},
        "matmul_size": n_mm,
        "matmul_gflop_per_s": peak,
        "matmul_gflop_per_s_samples": peaks,
        "official_img_per_s": OFFICIAL_IMG_S,
        "workloads": [w.result(peak) for w in pixel + [sa] + others],
    }
    for r in results["workloads"]:
        for m in OFFICIAL_IMG_S:
            if r["name"] == f"pixelcnn {m}":
                r["speedup_vs_official"] = r["img_per_s"] / OFFICIAL_IMG_S[m]
                ref = next(q for q in results["workloads"] if q["name"] == f"pixelcnn {m} (official-style)")
                r["speedup_vs_official_style"] = r["img_per_s"] / ref["img_per_s"]
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


def print_table(results: dict) -> None:
    print(f"\nmatmul fp32 ({results['matmul_size']}^2, best): {results['matmul_gflop_per_s']:.0f} GFLOP/s, "
          f"{results['machine']['threads']} threads, torch {results['machine']['torch']}")
    print(f"{'workload':58s} {'best/s':>8s} {'median/s':>9s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'%peak':>6s}  notes")
    for r in results["workloads"]:
        unit = "img" if "img_per_s" in r else "sent"
        notes = []
        if "speedup_vs_official" in r:
            notes.append(f"x{r['speedup_vs_official']:.2f} vs official {OFFICIAL_IMG_S[r['name'].split()[1]]:.0f}/s, "
                         f"x{r['speedup_vs_official_style']:.2f} vs official-style here")
        if "cost_vs_vae_step" in r:
            notes.append(f"{r['cost_vs_vae_step']:.1f}x the best VAE step, {r['cost_vs_adjacent_vae_step']:.1f}x "
                         f"the VAE step timed next to it")
        if "compile_s" in r:
            notes.append(f"compile {r['compile_s']:.0f} s")
        gf = f"{r['gflop_per_step']:10.2f} {r['gflop_per_s']:8.1f} {100 * r['fraction_of_matmul_peak']:5.1f}%" \
            if "gflop_per_step" in r else f"{'':10s} {'':8s} {'':6s}"
        print(f"{r['name'] + f' ({unit}/s)':58s} {r[f'{unit}_per_s']:8.1f} {r[f'{unit}_per_s_median']:9.1f} {gf}  "
              + "; ".join(notes))


if __name__ == "__main__":
    main()
