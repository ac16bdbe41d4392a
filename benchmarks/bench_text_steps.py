"""Cost of one training step of the Yahoo LSTM VAE and SA-VAE at the cpu profile, on real documents.

    python benchmarks/bench_text_steps.py --threads 1      # about a minute

This is the measurement that sized the cpu profile of the text models (skipvae.config.REDUCED): documents/s of a
VAE step and of an SA-VAE step (SVI with the profile's steps), batch of the profile's size, SGD as in training.
Best of `--repeats` steps after one warm-up step; shared machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from skipvae.config import make_config
from skipvae.data import load_dataset, pad_batch
from skipvae.models import build_model


def docs_per_second(model: str, threads: int, repeats: int) -> dict:
    cfg = make_config("yahoo", model, "cpu")
    data = load_dataset(cfg)
    x = pad_batch(data.documents("train")[:cfg.batch_size])
    torch.manual_seed(0)
    net = build_model(cfg, vocab_size=len(data.vocab))
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        net(x)["loss"].backward()
        opt.step()
        times.append(time.perf_counter() - t)
    best = min(times[1:])
    return {"model": model, "threads": threads, "batch": tuple(x.shape), "best_step_s": best,
            "docs_per_s": x.shape[0] / best}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [docs_per_second(m, args.threads, args.repeats) for m in ("vae", "sa-vae")]
    for r in rows:
        print(json.dumps(r))
    print(f"an SA-VAE step costs {rows[0]['docs_per_s'] / rows[1]['docs_per_s']:.1f} VAE steps")
    return rows


if __name__ == "__main__":
    main()
