"""Time and peak memory of the two expensive metrics: mutual information (against N, D) and the
importance-weighted NLL (against K and the sample chunk) on a small MLP VAE.

    python benchmarks/bench_metrics.py            # the full table (about a minute on 2 CPU cores)
    python benchmarks/bench_metrics.py --quick    # smaller sizes
    python benchmarks/bench_metrics.py --eval --out results/bench/eval.json   # IW-NLL s per 1,000 items, before/after

--eval times the IW-NLL of skipvae's own models, side by side in one run (alternating, medians): the PixelCNN
VAE at the paper's sizes (9 layers, batch 50) at K=500 and the LSTM VAE at the cpu profile's sizes (batch 32,
30 tokens, 20k words) at K=200, each with one likelihood call per sample chunk (before) and with calls of
at most IW_MAX_BATCH rows (after). One chunk of 50 samples of one batch is timed; the cost is linear in K and
in the number of items, so seconds per 1,000 items = t_chunk * (K / 50) * (1000 / batch).

Peak memory is the growth of the process's resident set during the call: the kernel's high-water mark
(VmHWM) is reset just before the call through /proc/self/clear_refs (Linux), after freed heap pages were
returned to the OS, and read afterwards.
(tracemalloc cannot see it: torch allocates tensors outside Python's allocator.) Prints a table; writes
nothing unless --out is given.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import time
from pathlib import Path

import torch
from torch import nn

from skipvae.metrics import IW_MAX_BATCH, iw_log_marginal, iw_nll, mutual_information


class MLPVAE(nn.Module):
    """A conv-free Bernoulli VAE (784-h-2D encoder, D-h-784 decoder), randomly initialized: speed only."""

    def __init__(self, latent_dim: int = 20, hidden: int = 512):
        super().__init__()
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
        self.dec = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784))

    def encode(self, x):
        return self.enc(x).chunk(2, dim=1)

    def log_likelihood(self, x, z):
        logits = self.dec(z)
        return -nn.functional.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(1)

    def refine(self, x, mu, logvar, create_graph=False):
        return mu, logvar


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_free_heap() -> None:
    """Give freed heap pages back to the OS (glibc malloc_trim), so that reuse of memory freed by an earlier
    case does not hide this case's peak; a no-op where glibc is absent."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(fn) -> tuple[float, float]:
    """(seconds, peak resident-memory growth in MB) of one call of fn()."""
    gc.collect()
    _release_free_heap()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss0 = _status_kb("VmRSS")
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    return seconds, max(0, _status_kb("VmHWM") - rss0) / 1024


def bench_mi(sizes, dims, repeats: int) -> list[dict]:
    rows = []
    for N in sizes:
        for D in dims:
            g = torch.Generator().manual_seed(0)
            mu, logvar = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g) - 2.0
            chunk = max(1, min(N, 2**23 // N))
            runs = [measure(lambda: mutual_information(mu, logvar, generator=g)) for _ in range(repeats)]
            rows.append({"metric": "mi", "N": N, "D": D, "chunk": chunk, "time_s": min(r[0] for r in runs),
                         "peak_mb": max(r[1] for r in runs), "block_mb": chunk * N * 8 / 2**20})
    return rows


def bench_iw(batch: int, Ks, chunks, repeats: int, latent_dim: int = 20) -> list[dict]:
    torch.manual_seed(0)
    model = MLPVAE(latent_dim).eval()
    x = torch.bernoulli(torch.full((batch, 1, 28, 28), 0.3))
    rows = []
    for K, chunk in [(K, min(c, K)) for K in Ks for c in chunks]:
        runs = [measure(lambda: iw_nll(model, x, K, chunk)) for _ in range(repeats)]
        t = min(r[0] for r in runs)
        rows.append({"metric": "iw_nll", "B": batch, "D": latent_dim, "K": K, "chunk": chunk, "time_s": t,
                     "ms_per_example": 1000 * t / batch, "peak_mb": max(r[1] for r in runs)})
    return rows


def bench_eval(repeats: int, quick: bool = False) -> list[dict]:
    """IW-NLL seconds per 1,000 items, one likelihood call per chunk (before) against IW_MAX_BATCH rows (after)."""
    import statistics
    import sys

    from skipvae.config import make_config
    from skipvae.models import build_model

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_models import images, sentences

    profile = "smoke" if quick else "paper"
    cases = []
    torch.manual_seed(0)
    image_model = build_model(make_config("mnist", "vae", profile, dec_layers=2 if quick else 9)).eval()
    cases.append(("pixelcnn vae (paper sizes, 9 layers)", image_model, images(8 if quick else 50), 500))
    text_cfg = make_config("yahoo", "vae", "smoke" if quick else "cpu")
    vocab = 100 if quick else 20000
    torch.manual_seed(0)
    text_model = build_model(text_cfg, vocab_size=vocab).eval()
    cases.append((f"lstm vae (cpu profile, V {vocab})", text_model,
                  sentences(text_cfg.batch_size, text_cfg.max_len, vocab), 200))
    chunk = 5 if quick else 50
    rows = []
    for name, model, x, K in cases:
        B = x.shape[0]
        with torch.no_grad():
            mu, logvar = model.encode(x)
        times = {"before": [], "after": []}
        estimates = {}
        for _ in range(repeats):
            for label, max_batch in (("before", None), ("after", IW_MAX_BATCH)):
                g = torch.Generator().manual_seed(0)
                t0 = time.perf_counter()
                estimates[label] = iw_log_marginal(model, x, chunk, chunk, mu, logvar, g, max_batch=max_batch)
                times[label].append(time.perf_counter() - t0)
        per_1000 = {k: statistics.median(v) * (K / chunk) * (1000 / B) for k, v in times.items()}
        rows.append({"metric": "iw_nll", "model": name, "K": K, "batch": B, "chunk": chunk,
                     "max_batch_after": IW_MAX_BATCH, "s_per_1000_before": per_1000["before"],
                     "s_per_1000_after": per_1000["after"], "speedup": per_1000["before"] / per_1000["after"],
                     "identical": bool(torch.equal(estimates["before"], estimates["after"]))})
    return rows


def bench_eval_cost(repeats: int, quick: bool = False, train_steps: int = 200) -> dict:
    """What the evaluation of a paper-scale 9-layer PixelCNN run costs against its training, side by side in one run
    on one model: the model is first trained `train_steps` bf16 steps on MNIST (batch 50), so that fp32 and bf16 are
    compared on the same weights past their initialization. Measured (medians of `repeats` alternating rounds):
    the bf16 training step; the forward pass of validation and of the test ELBO in fp32 and bf16 at several batch
    sizes; one IW-NLL chunk of 50 samples on 50 test images in fp32 and bf16 with the same draws, and the difference
    of their estimates (mean over the images, and the largest per image). The per-run seconds follow from the
    paper profile's sizes (evaluation_seconds)."""
    import statistics

    from skipvae.config import make_config
    from skipvae.data import load_dataset
    from skipvae.models import build_model

    cfg = make_config("mnist", "vae", "smoke" if quick else "paper", amp=True, n_eval_nll=1000, nll_subset="random")
    data = load_dataset(cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    train = data.batches("train", cfg.batch_size, epoch=0, seed=0)

    def step():
        x, _ = next(train)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, beta=1.0)
        loss = (out["rec"] + out["kl"]).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    t0 = time.perf_counter()
    for _ in range(train_steps):
        step()
    train_img_s = train_steps * cfg.batch_size / (time.perf_counter() - t0)
    model.eval()
    test = data.eval_bits("test")
    batches = (cfg.batch_size, 2 * cfg.batch_size) if quick else (cfg.batch_size, 2 * cfg.batch_size, 5 * cfg.batch_size)
    forward = {(b, amp): [] for b in batches for amp in (False, True)}
    x_iw = test[:8 if quick else 50]
    chunk = 5 if quick else 50
    with torch.no_grad():
        mu, logvar = model.encode(x_iw)
    iw_times, iw_estimates = {False: [], True: []}, {}
    elbo = {}  # the negative ELBO per image of the largest batch, fp32 and bf16, the same noise
    for _ in range(repeats):
        for (b, amp) in forward:
            x = test[:b]
            torch.manual_seed(1234)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                t0 = time.perf_counter()
                out = model(x, beta=1.0)
                forward[(b, amp)].append(b / (time.perf_counter() - t0))
            if b == batches[-1]:
                elbo[amp] = (out["rec"] + out["kl"]).double()
        for amp in (False, True):
            g = torch.Generator().manual_seed(0)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                t0 = time.perf_counter()
                iw_estimates[amp] = iw_log_marginal(model, x_iw, chunk, chunk, mu, logvar, g).double()
                iw_times[amp].append(time.perf_counter() - t0)
    per_image = iw_estimates[True] - iw_estimates[False]  # bf16 - fp32 log p(x), nats per image
    rows = [{"pass": "forward (ELBO)", "batch": b, "precision": "bf16" if amp else "fp32",
             "img_per_s": statistics.median(r)} for (b, amp), r in forward.items()]
    iw = {("bf16" if amp else "fp32"): statistics.median(t) * (cfg.iw_samples / chunk) * (1000 / x_iw.shape[0])
          for amp, t in iw_times.items()}
    return {"config": {"layers": cfg.dec_layers, "latent_dim": cfg.latent_dim, "batch_size": cfg.batch_size,
                       "epochs": cfg.epochs, "n_train": data.num_examples("train"),
                       "n_valid": data.num_examples("valid"), "n_test": data.num_examples("test"),
                       "iw_samples": cfg.iw_samples, "n_eval_nll": cfg.n_eval_nll},
            "train_steps_before": train_steps, "train_img_per_s_bf16": train_img_s, "forward": rows,
            "iw_nll_s_per_1000": iw, "neg_elbo_bf16_minus_fp32_mean_nats": float((elbo[True] - elbo[False]).mean()),
            "neg_elbo_bf16_minus_fp32_max_abs_nats": float((elbo[True] - elbo[False]).abs().max()),
            "neg_elbo_images_compared": len(elbo[True]), "iw_bf16_minus_fp32_mean_nats": float(per_image.mean()),
            "iw_bf16_minus_fp32_max_abs_nats": float(per_image.abs().max()), "iw_images_compared": len(per_image)}


def evaluation_seconds(cost: dict, valid_batch: int, valid_bf16: bool, nll_bf16: bool, n_eval_nll: int | None) -> dict:
    """Seconds of one paper-scale run, from bench_eval_cost: training (epochs x n_train / the bf16 step's rate); the
    per-epoch validation (epochs x n_valid forward passes at `valid_batch`) and the test ELBO pass (n_test); the
    IW-NLL on `n_eval_nll` test images (None: all) at K = iw_samples; and evaluation / training."""
    c = cost["config"]
    rate = {(r["batch"], r["precision"]): r["img_per_s"] for r in cost["forward"]}[
        (valid_batch, "bf16" if valid_bf16 else "fp32")]
    train = c["epochs"] * c["n_train"] / cost["train_img_per_s_bf16"]
    valid = c["epochs"] * c["n_valid"] / rate
    test = c["n_test"] / rate
    nll = min(c["n_test"], n_eval_nll or c["n_test"]) / 1000 * cost["iw_nll_s_per_1000"][
        "bf16" if nll_bf16 else "fp32"]
    return {"train_s": train, "valid_s": valid, "test_elbo_s": test, "iw_nll_s": nll,
            "evaluation_s": valid + test + nll, "evaluation_over_training": (valid + test + nll) / train}


def print_table(rows: list[dict]) -> None:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(fmt(r[k]) for k in keys) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the table shows the fastest")
    parser.add_argument("--out", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--eval", action="store_true", help="IW-NLL of skipvae's models: before / after")
    parser.add_argument("--eval-cost", action="store_true", help="a paper-scale PixelCNN run's evaluation against "
                        "its training: forward and IW-NLL rates in fp32 and bf16, and their agreement")
    parser.add_argument("--train-steps", type=int, default=200, help="--eval-cost: bf16 steps before measuring")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    if args.eval_cost:
        report_eval_cost(args)
        return
    if args.eval:
        rows = bench_eval(args.repeats, args.quick)
        print_table(rows)
        if args.out:
            from skipvae.records import provenance
            Path(args.out).write_text(json.dumps({"eval": rows, "provenance": provenance(0, "paper", "cpu"),
                                                  "threads": torch.get_num_threads()}, indent=1))
        return
    if args.quick:
        mi = bench_mi([1000, 4000], [32], args.repeats)
        iw = bench_iw(50, [1, 10, 100], [50], args.repeats)
    else:
        mi = bench_mi([1000, 5000, 10000, 20000], [32], args.repeats) + bench_mi([10000], [8, 64], args.repeats)
        iw = bench_iw(50, [1, 10, 50, 100, 500], [50], args.repeats) + bench_iw(50, [500], [10, 100, 500], args.repeats)
    print_table(mi)
    print_table(iw)
    if args.out:
        Path(args.out).write_text(json.dumps({"mi": mi, "iw_nll": iw}, indent=1))


def report_eval_cost(args) -> dict:
    """--eval-cost: the measurements, then the per-run seconds of the paper profile as it was (fp32 validation at
    batch 50, the IW-NLL in fp32 on the whole test set) and of each cheaper choice; written to --out."""
    cost = bench_eval_cost(args.repeats, args.quick, args.train_steps)
    print_table(cost["forward"])
    print(f"IW-NLL s per 1,000 images at K = {cost['config']['iw_samples']}: " +
          ", ".join(f"{k} {v:.0f}" for k, v in cost["iw_nll_s_per_1000"].items()) +
          f"; bf16 - fp32 over {cost['iw_images_compared']} images: mean {cost['iw_bf16_minus_fp32_mean_nats']:+.4f} "
          f"nats, largest {cost['iw_bf16_minus_fp32_max_abs_nats']:.4f}; the negative ELBO over "
          f"{cost['neg_elbo_images_compared']} images: mean {cost['neg_elbo_bf16_minus_fp32_mean_nats']:+.4f}, largest "
          f"{cost['neg_elbo_bf16_minus_fp32_max_abs_nats']:.4f}\n")
    base = cost["config"]["batch_size"]
    batches = sorted({r["batch"] for r in cost["forward"]})
    n_nll = cost["config"]["n_eval_nll"]
    choices = {f"before: fp32 validation at batch {base}, IW-NLL on the whole test set (fp32)": (base, False, False,
                                                                                               None)}
    choices |= {f"IW-NLL on {n_nll} random test images, fp32, validation batch {b}": (b, False, False, n_nll)
                for b in batches}
    choices |= {f"as above, validation in bf16 at batch {b}": (b, True, False, n_nll) for b in batches}
    choices |= {f"as above, and the IW-NLL in bf16 (validation batch {b})": (b, True, True, n_nll) for b in batches}
    per_run = [{"choice": k, **evaluation_seconds(cost, *v)} for k, v in choices.items()]
    print_table(per_run)
    out = {"eval_cost": cost, "per_run": per_run, "threads": torch.get_num_threads()}
    if args.out:
        from skipvae.records import provenance
        out["provenance"] = provenance(0, "paper", "cpu")
        out["load_average"] = list(__import__("os").getloadavg())
        Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
