"""Command line: `python -m skipvae {data,train,evaluate,sweep} --help`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skipvae.config import ARCHS, DATASETS, MODELS, PROFILES, RunConfig, make_config
from skipvae.errors import SkipVAEError

TRAIN_OPTIONS = {  # option -> (type, help); every option defaults to the profile's value
    "latent_dim": (int, "latent dimension (paper: 20 images, 32 text)"),
    "dec_layers": (int, "decoder depth: PixelCNN layers, MLP hidden layers or LSTM layers (paper: 8 / 2 / 1)"),
    "dec_channels": (int, "PixelCNN channels (paper: 32)"),
    "dec_kernels": (str, "comma-separated PixelCNN kernel sizes, one per layer (default: all 3)"),
    "enc_channels": (int, "ResNet encoder channels (paper: 64)"),
    "mlp_hidden": (int, "MLP hidden units (paper: 1024)"),
    "emb_dim": (int, "word embedding size (paper: 512)"),
    "enc_hidden": (int, "LSTM encoder units (paper: 1024)"),
    "dec_hidden": (int, "LSTM decoder units (paper: 1024)"),
    "dropout": (float, "decoder dropout for text (paper: 0.5)"),
    "max_len": (int, "maximum document length in tokens for text (paper: 200)"),
    "svi_steps": (int, "SVI refinement steps for sa-vae models (paper: 20)"),
    "svi_lr": (float, "SVI step size (paper: 1)"),
    "epochs": (int, "training epochs (paper: 100 images, 30 text)"),
    "batch_size": (int, "batch size (paper: 50 images, 32 text)"),
    "lr": (float, "learning rate (paper: Adam 1e-3 images, SGD 1.0 text)"),
    "optimizer": (str, "adam or sgd"),
    "warmup_epochs": (int, "KL warm-up epochs, beta from beta_start to 1 (paper: 0 images, 10 text)"),
    "n_train": (int, "use only the first N training examples"),
    "n_valid": (int, "use only the first N validation examples"),
    "n_test": (int, "use only the first N test examples"),
    "iw_samples": (int, "importance samples K of the NLL estimate (paper: 500)"),
    "n_eval_nll": (int, "test examples that get the importance-weighted NLL (default: all)"),
}


def config_from_args(args: argparse.Namespace) -> RunConfig:
    overrides = {name: getattr(args, name) for name in TRAIN_OPTIONS}
    if overrides["dec_kernels"] is not None:
        try:
            overrides["dec_kernels"] = [int(k) for k in overrides["dec_kernels"].split(",")]
        except ValueError:
            raise SkipVAEError(f"--dec-kernels {args.dec_kernels!r}: give comma-separated integers, e.g. 9,7,5,3")
    return make_config(args.dataset, args.model, args.profile, arch=args.arch, seed=args.seed, **overrides)


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train one model and write its record",
                       description="Train one model. Options left out take the profile's value "
                                   "(paper: the official hyperparameters).")
    p.add_argument("--dataset", choices=DATASETS, default="mnist", help="dataset (default: mnist)")
    p.add_argument("--arch", choices=ARCHS, default=None,
                   help="architecture: pixelcnn or mlp for images, lstm for yahoo (default: pixelcnn / lstm)")
    p.add_argument("--model", choices=MODELS, default="vae", help="model (default: vae)")
    p.add_argument("--profile", choices=PROFILES, default="cpu",
                   help="scale: smoke (seconds), cpu (reduced, 2 cores), paper (official; needs a GPU)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    for name, (typ, text) in TRAIN_OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None, help=text)
    p.add_argument("--out", default="runs", help="parent folder of the run directory (default: runs)")
    p.add_argument("--data-dir", default=None, help="data folder (default: $SKIPVAE_DATA, ./data, ../shared/data)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="stop cleanly at an epoch boundary before this many seconds; rerun to resume")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def cmd_train(args) -> int:
    from skipvae.train import train

    cfg = config_from_args(args)  # validated before any data is loaded
    run_dir = Path(args.out) / cfg.run_name()
    record = train(cfg, run_dir, data_dir=args.data_dir, device=args.device, progress=not args.no_progress,
                   time_budget_s=args.time_budget)
    print(json.dumps({"run_dir": str(run_dir), "status": record["status"],
                      "metrics": record.get("metrics")}, indent=1))
    return 0


def cmd_evaluate(args) -> int:
    path = Path(args.checkpoint)
    if not path.is_file():
        raise SkipVAEError(f"no checkpoint at {path}; give the path of a run's best.pt or last.pt")
    from skipvae.metrics import evaluate
    from skipvae.records import atomic_write_json
    from skipvae.train import build, load_checkpoint

    ckpt = load_checkpoint(path)
    cfg = RunConfig.from_dict(ckpt["config"]).validate()
    if args.iw_samples:
        cfg.iw_samples = args.iw_samples
    data, model = build(cfg, data_dir=args.data_dir, device=args.device)
    model.load_state_dict(ckpt["model"])
    metrics = evaluate(model, data, split=args.split, iw_samples=cfg.iw_samples, iw_chunk=cfg.iw_chunk,
                       n_eval_nll=cfg.n_eval_nll, seed=cfg.seed, batch_size=cfg.batch_size)
    if args.out:
        atomic_write_json(args.out, {"checkpoint": str(path), "split": args.split, "config": cfg.to_dict(),
                                     "metrics": metrics})
    print(json.dumps(metrics, indent=1, default=float))
    return 0


def cmd_data(args) -> int:
    from skipvae.data import all_required_ok, check_data, fetch_data, fetch_target_dir, format_check_table

    if args.action == "check":
        rows = check_data(args.data_dir)
        print(format_check_table(rows))
        if not all_required_ok(rows):
            print("\nsome files are not OK: run `python -m skipvae data fetch` on a machine with internet, "
                  "or point SKIPVAE_DATA at a verified copy.", file=sys.stderr)
            return 1
        return 0
    dest = fetch_target_dir(args.data_dir)
    paths = fetch_data(dest)
    print(f"fetched {len(paths)} file(s) into {dest}" + "".join(f"\n  {p}" for p in paths))
    return 0


def cmd_sweep(args) -> int:
    from skipvae.sweep import run_sweep

    run_sweep(args.sweep, executor=args.executor, out=args.out, data_dir=args.data_dir, dry_run=args.dry_run,
              time_budget_s=args.piece_seconds, slurm=dict(kv.split("=", 1) for kv in args.slurm or []),
              jobs=args.jobs, threads_per_run=args.threads_per_run)
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m skipvae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="check or fetch the datasets")
    d.add_argument("action", choices=["check", "fetch"],
                   help="check: verify every file by sha256; fetch: download from the public sources")
    d.add_argument("--data-dir", default=None, help="data folder (default: $SKIPVAE_DATA, ./data, ../shared/data)")

    add_train_parser(sub)

    e = sub.add_parser("evaluate", help="evaluate a checkpoint on the test set")
    e.add_argument("checkpoint", help="a run's best.pt or last.pt")
    e.add_argument("--split", choices=["valid", "test"], default="test", help="split (default: test)")
    e.add_argument("--iw-samples", type=int, default=None, help="importance samples K (default: the run's)")
    e.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    e.add_argument("--data-dir", default=None, help="data folder")
    e.add_argument("--device", default=None, help="torch device")

    s = sub.add_parser("sweep", help="run a sweep file locally or on Slurm through submitit")
    s.add_argument("sweep", help="sweep YAML file (see sweeps/)")
    s.add_argument("--executor", choices=["local", "submitit-local", "slurm"], default="local",
                   help="local: one run after another here; slurm: one job per run (submitit); "
                        "submitit-local: submitit's local executor (testing)")
    s.add_argument("--out", default="runs", help="parent folder of the run directories (default: runs)")
    s.add_argument("--data-dir", default=None, help="data folder")
    s.add_argument("--piece-seconds", type=float, default=540.0,
                   help="each job trains until this budget, then resubmits itself (default: 540 = 9 min)")
    s.add_argument("--slurm", nargs="*", metavar="KEY=VALUE",
                   help="submitit Slurm parameters, e.g. slurm_partition=gpu gpus_per_node=1")
    s.add_argument("--dry-run", action="store_true", help="list the runs and whether they are done")
    s.add_argument("--jobs", type=int, default=1,
                   help="local executor: train this many runs at once (each its share of the threads; on a GPU "
                        "they share the device); the records do not depend on it (default: 1)")
    s.add_argument("--threads-per-run", type=int, default=None,
                   help="CPU threads of each run with --jobs (default: CPU cores // jobs)")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    handlers = {"data": cmd_data, "train": cmd_train, "evaluate": cmd_evaluate, "sweep": cmd_sweep}
    try:
        return handlers[args.command](args)
    except SkipVAEError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
