"""Training throughput of skipvae's models, side by side in one run with the official code's way of computing them.

    python benchmarks/bench_models.py                                  # about 10 minutes on 2 cores
    python benchmarks/bench_models.py --official /path/to/skip-vae     # also the official CNNVAE itself
    python benchmarks/bench_models.py --quick                          # tiny sizes: checks that it runs

Every configuration is timed in the same process, the configurations taking turns round after round (so they
see the same machine load); the table reports medians over all timed steps, and every ratio divides two
medians of this run. Nothing is compared with a number typed in from another day.

Measures
  (a) the machine's matmul rates, fp32 and bf16 (torch.mm of 2048 x 2048), after every round (best kept);
  (b) training images/s (forward + backward + gradient clipping + Adam, batch 50) of the PixelCNN VAE and
      Skip-VAE at the paper's sizes (latent 20, --layers x 32 channels, 3x3 kernels), in fp32 and under bf16
      autocast (cfg.amp), next to the same model computed the official way (the in-project re-statement
      `official_style_loss`: NCHW, explicit pads and crops, concatenations, plain gates) and, with --official
      DIR, the official `CNNVAE` of models_img_skip.py imported from that checkout (never copied here); each
      with its FLOPs per step (torch.utils.flop_counter) and the fraction of the matmul rate of its precision;
  (c) one SVI step of SA-VAE against a VAE step: (t_SA(K) - t_VAE) / K / t_VAE, K = --svi-steps;
  (d) the weak MLP model, and the LSTM VAE in tokens/s at the cpu profile's sizes and at the paper's sizes
      (1024 units, 512-d embeddings, 20k words; sentences cut to --paper-len tokens), fp32 and bf16; Table 3's
      largest MLP Skip-VAE eager, with the fused Adam, and with cfg.compile_step (--mlp-step: these alone);
  (e) --profile: the operators that take the time of one bf16 PixelCNN VAE step (torch.profiler);
  (f) --sa-text alone: (c) for the LSTM at the cpu profile's Yahoo sizes and its own K (sizes the SA rows of
      the cpu plan; a few minutes at 1 thread).
"""

from __future__ import annotations

import argparse
import copy
import importlib
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


def official_cnnvae_loss(model, x, beta: float = 1.0):
    """Batch-mean negative ELBO of the official CNNVAE, as train_img_skip.py computes it (sigmoid, then
    utils.log_bernoulli_loss and utils.kl_loss_diag, both averaged over the batch)."""
    mean, logvar = model._enc_forward(x)
    z = model._reparameterize(mean, logvar)
    preds = model._dec_forward(x, z)
    nll = F.binary_cross_entropy(preds.float(), x, reduction="sum") / x.shape[0]
    kl = (-0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)).float().mean()
    return nll + beta * kl


def official_cnnvae(official: Path, skip: bool, layers: int, latent: int):
    """The official CNNVAE at the paper's sizes, imported from the checkout at `official` (not vendored)."""
    sys.path.insert(0, str(official))
    try:
        module = importlib.import_module("models_img_skip")
    finally:
        sys.path.remove(str(official))
    torch.manual_seed(0)
    return module.CNNVAE(img_size=[1, 28, 28], latent_dim=latent, enc_layers=[64, 64, 64],
                         dec_kernel_size=[3] * layers, dec_layers=[32] * layers, latent_feature_map=1,
                         skip=int(skip))


# ---------------------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------------------

def matmul_gflops(dtype=torch.float32, n: int = 2048, repeats: int = 10) -> float:
    """Best torch.mm rate in GFLOP/s (2 n^3 flops per product) for n x n matrices of `dtype`."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class Workload:
    """One training configuration: `step()` runs forward (under bf16 autocast if `amp`) + backward + gradient
    clipping + Adam step on a fixed batch. `items` counts what the step processes (images or tokens)."""

    def __init__(self, name: str, model, batch, loss_fn=None, unit: str = "img", amp: bool = False,
                 items: int | None = None, group: str | None = None, fused: bool = False):
        self.name, self.model, self.batch, self.unit, self.amp = name, model, batch, unit, amp
        self.group = group  # workloads of one group are compared with the group's reference
        self.items = items if items is not None else batch.shape[0]
        self.loss_fn = loss_fn or (lambda m, x: m(x)["loss"])
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
        self.times: list[float] = []
        self.flops: int | None = None
        self.extra: dict = {}

    def loss(self):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
            return self.loss_fn(self.model, self.batch).float()

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss().backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.optimizer.step()

    def count_flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.loss().backward()
        self.optimizer.zero_grad(set_to_none=True)
        self.flops = counter.get_total_flops()
        return self.flops

    def median(self) -> float:
        return statistics.median(self.times)

    def result(self, peaks: dict) -> dict:
        median = self.median()
        out = {"name": self.name, "group": self.group, "precision": "bf16" if self.amp else "fp32",
               "median_step_s": median, "best_step_s": min(self.times), "steps_timed": len(self.times),
               f"{self.unit}_per_s": self.items / median}
        if self.flops is not None:
            peak = peaks["bf16" if self.amp else "fp32"]
            out["gflop_per_step"] = self.flops / 1e9
            out["gflop_per_s"] = self.flops / median / 1e9
            out["fraction_of_matmul_peak"] = out["gflop_per_s"] / peak
        return out | self.extra


def run_rounds(workloads: list[Workload], repeats: int, steps: int, warmup: int = 2, probe=None) -> None:
    """Warm every workload up, then `repeats` rounds in which each times `steps` steps in turn; `probe()` is
    called after every round (the matmul rates, so that they are measured under the same load)."""
    for w in workloads:
        for _ in range(warmup):
            w.step()
    for _ in range(repeats):
        for w in workloads:
            w.times.extend(_timed(w.step) for _ in range(steps))
        if probe is not None:
            probe()


def time_against(sa: Workload, vae: Workload, steps: int, svi_steps: int) -> None:
    """Time `steps` steps of the (slow) SA workload, each right after a step of `vae` (same load); store the
    median ratio t_SA / t_VAE of adjacent steps and the cost of one SVI step, (ratio - 1) / K VAE steps."""
    ratios = []
    sa.step()
    for _ in range(steps):
        t_vae = _timed(vae.step)
        sa.times.append(_timed(sa.step))
        ratios.append(sa.times[-1] / t_vae)
    ratio = statistics.median(ratios)
    sa.extra["cost_vs_adjacent_vae_step"] = ratio
    sa.extra["svi_step_cost_in_vae_steps"] = (ratio - 1) / svi_steps


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
    return build_model(make_config("mnist", model, "smoke" if quick else "paper", **overrides))


def mlp_step_workloads(quick: bool, x: torch.Tensor) -> list[Workload]:
    """Table 3's largest weak MLP model (Skip-VAE, 4 decoder layers, paper sizes) three ways: eager with PyTorch's
    default Adam (the cpu profile), eager with the fused Adam, and cfg.compile_step (skipvae.train.training_forward:
    inductor-compiled forward, eager's noise stream, fused Adam), the paper profile's step."""
    from skipvae.train import training_forward

    cfg = make_config("mnist", "skip-vae", "smoke" if quick else "paper", arch="mlp", dec_layers=4)
    loads = []
    for variant, fused, compiled in (("eager", False, False), ("eager fused Adam", True, False),
                                     ("compile_step", True, True)):
        torch.manual_seed(0)
        model = build_model(cfg)
        w = Workload(f"mlp skip-vae l4 {variant}", model, x, group="mlp skip-vae l4", fused=fused)
        if compiled:
            forward = training_forward(cfg, model)
            w.loss_fn = lambda m, batch, f=forward: f(batch, beta=torch.tensor(1.0))["loss"]
        loads.append(w)
    return loads


def pixel_step_workloads(quick: bool, x: torch.Tensor, layers: int, official: Path | None) -> list[Workload]:
    """The 9-layer PixelCNN VAE and Skip-VAE step (paper sizes) four ways, eager and cfg.compile_step
    (skipvae.train.training_forward: inductor-compiled forward, eager's noise, fused Adam), each in fp32 and bf16,
    and, with `official`, the official code's CNNVAE in fp32 (the reference of issue 25's target)."""
    from skipvae.train import training_forward

    loads = []
    for name in ("vae", "skip-vae"):
        group = f"pixelcnn {name} l{layers}"
        if official is not None:
            ref = official_cnnvae(official, name == "skip-vae", layers, 20)
            loads.append(Workload(f"{group} official CNNVAE", ref, x, loss_fn=official_cnnvae_loss, group=group))
        for amp in (False, True):
            for compiled in (False, True):
                cfg = make_config("mnist", name, "smoke" if quick else "paper", dec_layers=layers,
                                  compile_step=compiled)
                torch.manual_seed(0)
                model = build_model(cfg)
                variant = ("compile_step" if compiled else "eager") + (" bf16" if amp else "")
                w = Workload(f"{group} {variant}", model, x, amp=amp, group=group, fused=compiled)
                if compiled:
                    forward = training_forward(cfg, model)
                    w.loss_fn = lambda m, batch, f=forward: f(batch, beta=torch.tensor(1.0))["loss"]
                loads.append(w)
    return loads


def profile_step(w: Workload, top: int = 12) -> list[dict]:
    """The operators that take the time of one step of `w` (self CPU time, torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    w.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        w.step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total,
             "calls": e.count} for e in events[:top]]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", type=Path, help="a checkout of yoonkim/skip-vae: also time its CNNVAE")
    ap.add_argument("--repeats", type=int, default=7, help="rounds of timing (medians are reported)")
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per workload and round")
    ap.add_argument("--layers", type=int, default=9, help="PixelCNN layers (the paper: 9)")
    ap.add_argument("--svi-steps", type=int, default=5, help="K of the timed SA-VAE step (cost per SVI step)")
    ap.add_argument("--sa-steps", type=int, default=3, help="timed SA-VAE steps (each is slow)")
    ap.add_argument("--paper-len", type=int, default=40, help="sentence length of the paper-size LSTM")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="profile one bf16 PixelCNN VAE step")
    ap.add_argument("--quick", action="store_true", help="tiny models, one round: checks the script runs")
    ap.add_argument("--sa-text", action="store_true", help="only (f): SA-VAE against the VAE, LSTM, cpu sizes")
    ap.add_argument("--mlp-step", action="store_true",
                    help="only the weak MLP model's step: eager, fused Adam, compile_step (Table 3's runs)")
    ap.add_argument("--pixel-step", action="store_true",
                    help="only the PixelCNN VAE and Skip-VAE step: eager and compile_step, fp32 and bf16 (and the "
                         "official CNNVAE with --official)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats, args.steps, args.sa_steps, args.svi_steps, args.paper_len = 1, 1, 1, 2, 6
    if args.official is not None and not (args.official / "models_img_skip.py").is_file():
        ap.error(f"--official {args.official}: no models_img_skip.py there (a checkout of yoonkim/skip-vae)")

    if args.sa_text:
        return sa_text(args)
    n_mm = 512 if args.quick else 2048  # the square matmul that measures the machine's rate
    # the MLP step is fp32 only: its run skips the bf16 rate, which a CPU without bf16 kernels emulates slowly
    precisions = (("fp32", torch.float32),) if args.mlp_step else (("fp32", torch.float32), ("bf16", torch.bfloat16))
    peaks = {name: [matmul_gflops(dtype, n_mm)] for name, dtype in precisions}

    def probe():
        for name, dtype in precisions:
            peaks[name].append(matmul_gflops(dtype, n_mm, repeats=3))

    x = images(8 if args.quick else 50)
    layers = 2 if args.quick else args.layers
    if args.mlp_step:
        return finish(args, peaks, [], [], mlp_step_workloads(args.quick, x), probe, n_mm)
    if args.pixel_step:
        return finish(args, peaks, [], [], pixel_step_workloads(args.quick, x, layers, args.official), probe, n_mm)

    # (b) PixelCNN VAE / Skip-VAE: skipvae fp32 / bf16 against the official way (re-statement, official code).
    pixel = []
    for model_name in ("vae", "skip-vae"):
        model = pixelcnn(model_name, args.quick, dec_layers=layers)
        group = f"pixelcnn {model_name}"
        if args.official is not None:
            ref = official_cnnvae(args.official, model_name == "skip-vae", layers, model.latent_dim)
            for amp in (False, True):
                pixel.append(Workload(f"{group} official CNNVAE" + (" bf16" if amp else ""), copy.deepcopy(ref), x,
                                      loss_fn=official_cnnvae_loss, amp=amp, group=group))
        restated = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
        for amp in (False, True):
            pixel.append(Workload(f"{group} official-style" + (" bf16" if amp else ""), copy.deepcopy(restated), x,
                                  loss_fn=official_style_loss, amp=amp, group=group))
        for amp in (False, True):
            pixel.append(Workload(f"{group} skipvae" + (" bf16" if amp else ""), copy.deepcopy(model), x, amp=amp,
                                  group=group))
    for w in pixel:
        w.count_flops()
    run_rounds(pixel, args.repeats, args.steps, probe=probe)

    # (c) one SVI step of SA-VAE, against the VAE step (bf16 and fp32)
    sa_loads = []
    for amp in (False, True):
        vae = next(w for w in pixel if w.name == "pixelcnn vae skipvae" + (" bf16" if amp else ""))
        sa = Workload(f"pixelcnn sa-vae K={args.svi_steps} skipvae" + (" bf16" if amp else ""),
                      pixelcnn("sa-vae", args.quick, dec_layers=layers, svi_steps=args.svi_steps), x, amp=amp)
        time_against(sa, vae, args.sa_steps, args.svi_steps)
        sa_loads.append(sa)

    # (d) MLP (paper sizes) and the LSTM VAE in tokens/s at the cpu profile's and the paper's sizes.
    others = []
    for amp in (False, True):
        torch.manual_seed(0)
        others.append(Workload("mlp vae skipvae" + (" bf16" if amp else ""), build_model(make_config(
            "mnist", "vae", "smoke" if args.quick else "paper", arch="mlp")), x, amp=amp, group="mlp vae"))
    vocab = 100 if args.quick else 20000
    for profile in ("cpu", "paper"):
        cfg = make_config("yahoo", "vae", "smoke" if args.quick else profile)
        length = cfg.max_len if profile == "cpu" else args.paper_len
        text = sentences(cfg.batch_size, length, vocab)
        tokens = int((text[:, 1:] != 0).sum())
        for amp in (False, True):
            torch.manual_seed(0)
            others.append(Workload(f"lstm vae {profile} sizes (emb {cfg.emb_dim}, hidden {cfg.dec_hidden}, "
                                   f"len {length})" + (" bf16" if amp else ""), build_model(cfg, vocab_size=vocab),
                                   text, unit="tok", amp=amp, items=tokens, group=f"lstm vae {profile}"))
    others += mlp_step_workloads(args.quick, x)
    return finish(args, peaks, pixel, sa_loads, others, probe, n_mm)


def finish(args, peaks: dict, pixel: list, sa_loads: list, others: list, probe, matmul_size: int) -> dict:
    """Time `others` in rounds (FLOPs counted on the eager ones; a compiled step computes the same), then the
    ratios of medians within each group, the table and the JSON."""
    eager = [w for w in others if "compile_step" not in w.name]
    for w in eager:
        w.count_flops()
    for w in others:
        if w.flops is None:  # the compiled step: the FLOPs of its group's eager step
            w.flops = next(q.flops for q in eager if q.group == w.group and "official" not in q.name)
    run_rounds(others, args.repeats, args.steps, probe=probe)

    best = {k: max(v) for k, v in peaks.items()}
    rows = [w.result(best) for w in pixel + sa_loads + others]
    for r in rows:  # ratios of medians within each group: against the official code (if given), else the re-statement
        group = [q for q in rows if q["group"] is not None and q["group"] == r["group"]]
        unit = "img_per_s" if "img_per_s" in r else "tok_per_s"
        fp32 = next((q for q in group if q["name"].endswith("official CNNVAE")), None)
        style = next((q for q in group if q["name"].endswith("official-style")), None)
        base = next((q for q in group if q["precision"] == "fp32" and "official" not in q["name"]), None)
        if fp32 is not None:
            r["x_official_fp32"] = r[unit] / fp32[unit]
        if style is not None:
            r["x_official_style_fp32"] = r[unit] / style[unit]
        if base is not None and "official" not in r["name"]:
            r["x_skipvae_fp32"] = r[unit] / base[unit]
    results = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    # other work on the machine (training lanes): the ratios hold, the absolute rates drop
                    "load_average_1_5_15_min_at_end": list(os.getloadavg())},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "matmul_size": matmul_size, "matmul_gflop_per_s": best, "matmul_gflop_per_s_samples": peaks,
        "workloads": rows,
    }
    if args.profile and pixel:
        w = next(w for w in pixel if w.name == "pixelcnn vae skipvae bf16")
        results["profile_pixelcnn_vae_bf16"] = profile_step(w)
    try:
        from skipvae.records import provenance
        results["provenance"] = provenance(0, "paper", "cpu")
    except Exception as e:  # noqa: BLE001 - provenance is best effort outside a git checkout
        results["provenance"] = {"error": str(e)}
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


def sa_text(args) -> dict:
    """(f) SA-VAE and Skip-SA-VAE steps against the VAE step of the LSTM at the cpu profile's Yahoo sizes
    (batch, max_len, K = svi_steps and precision of that profile), 20k words."""
    profile = "smoke" if args.quick else "cpu"
    vocab = 100 if args.quick else 20000
    rows = []
    for name in ("sa-vae", "skip-sa-vae"):
        loads = {}
        for model in (name.replace("sa-", ""), name):
            cfg = make_config("yahoo", model, profile)
            torch.manual_seed(0)
            text = sentences(cfg.batch_size, cfg.max_len, vocab)
            loads[model] = Workload(f"lstm {model} {profile} sizes K={cfg.svi_steps}" + (" bf16" if cfg.amp else ""),
                                    build_model(cfg, vocab_size=vocab), text, unit="tok", amp=cfg.amp,
                                    items=int((text[:, 1:] != 0).sum()))
        vae, sa = loads.values()
        run_rounds([vae], 1, args.steps)
        time_against(sa, vae, args.sa_steps, make_config("yahoo", name, profile).svi_steps)
        rows += [vae.result({}), sa.result({})]
    results = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0], "workloads": rows}
    from skipvae.records import provenance
    results["provenance"] = provenance(0, profile, "cpu")
    for r in rows:
        print(f"{r['name']:<45} {r['median_step_s']:.3f} s/step"
              + (f"  = {r['cost_vs_adjacent_vae_step']:.1f} adjacent VAE steps" if "cost_vs_adjacent_vae_step" in r
                 else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


def print_table(results: dict) -> None:
    mm = results["matmul_gflop_per_s"]
    rates = ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in mm.items())
    print(f"\nmatmul {results['matmul_size']}^2 (best): {rates}; {results['machine']['threads']} threads, torch {results['machine']['torch']}; medians of "
          f"{results['settings']['repeats']} rounds")
    print(f"{'workload':62s} {'median/s':>9s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'%peak':>6s}  ratios (medians)")
    for r in results["workloads"]:
        unit = next(u for u in ("img", "tok") if f"{u}_per_s" in r)
        notes = []
        for key, label in (("x_official_fp32", "official CNNVAE fp32"),
                           ("x_official_style_fp32", "official-style fp32"), ("x_skipvae_fp32", "skipvae fp32")):
            if r.get(key) is not None:
                notes.append(f"x{r[key]:.2f} vs {label}")
        if "svi_step_cost_in_vae_steps" in r:
            notes.append(f"SA step = {r['cost_vs_adjacent_vae_step']:.1f} VAE steps; one SVI step = "
                         f"{r['svi_step_cost_in_vae_steps']:.2f} VAE steps")
        gf = f"{r['gflop_per_step']:10.2f} {r['gflop_per_s']:8.1f} {100 * r['fraction_of_matmul_peak']:5.1f}%" \
            if "gflop_per_step" in r else f"{'':10s} {'':8s} {'':6s}"
        print(f"{r['name'] + f' ({unit}/s)':62s} {r[f'{unit}_per_s']:9.1f} {gf}  " + "; ".join(notes))
    for p in results.get("profile_pixelcnn_vae_bf16", []):
        print(f"  profile: {p['op']:45s} {p['self_ms']:8.1f} ms {100 * p['share']:5.1f}%  ({p['calls']} calls)")


if __name__ == "__main__":
    main()
