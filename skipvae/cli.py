"""Command line: `python -m skipvae {data,train,evaluate,sweep} --help`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from skipvae.config import (ARCHS, DATASETS, INFERENCES, MODEL_ALIASES, MODELS, PROFILES, WHOLE, RunConfig,
                            make_config)
from skipvae import __version__
from skipvae.errors import ConfigError, Interrupted, SkipVAEError
from skipvae.params import check_device, check_out_dir, check_out_file, check_param
from skipvae.experiments import EXPERIMENTS


def split_size(text: str):
    """A split size on the command line: a positive integer, or `all` (the whole split)."""
    if text == WHOLE:
        return WHOLE
    try:
        return int(text)
    except ValueError:
        pass
    try:  # 1e12, 5e4: a whole number in float notation, checked against the split like any size
        number = float(text)
        if number.is_integer():
            return int(number)
    except (ValueError, OverflowError):
        pass
    raise argparse.ArgumentTypeError(f"invalid split size {text!r}: an integer or '{WHOLE}'")

TRAIN_OPTIONS = {  # option -> (type, help); every option defaults to the profile's value
    "latent_dim": (int, "latent dimension (paper: 20 images, 32 text)"),
    "dec_layers": (int, "decoder depth: PixelCNN layers, MLP hidden layers or LSTM layers (paper: 9 / 2-4 / 1)"),
    "dec_channels": (int, "PixelCNN channels (paper: 32)"),
    "dec_kernels": (str, "comma-separated PixelCNN kernel sizes, one per layer (default: all 3)"),
    "enc_channels": (int, "ResNet encoder channels (paper: 64)"),
    "mlp_hidden": (int, "MLP hidden units of the encoder and decoder (paper: 512)"),
    "emb_dim": (int, "word embedding size (paper: 512)"),
    "enc_hidden": (int, "LSTM encoder units (paper: 1024)"),
    "dec_hidden": (int, "LSTM decoder units (paper: 1024)"),
    "dropout": (float, "decoder dropout for text (paper: 0.5)"),
    "max_len": (int, "maximum document length in tokens for text (paper: 200)"),
    "svi_steps": (int, "SVI refinement steps for sa-vae models (paper: 10)"),
    "svi_lr": (float, "SVI step size (paper: 1)"),
    "epochs": (int, "training epochs (paper: 100 images, 30 text)"),
    "batch_size": (int, "batch size (paper: 50 images, 32 text)"),
    "lr": (float, "learning rate (paper: Adam 1e-3 images, SGD 1.0 text)"),
    "optimizer": (str, "adam or sgd"),
    "warmup_epochs": (int, "KL warm-up epochs, beta from beta_start to 1 (paper: 0 images, 10 text)"),
    "objective": (str, "training objective: elbo, or a collapse remedy: kl-anneal, cyclical, free-bits, beta, "
                       "bn-vae, aggressive (skipvae.objectives)"),
    "cycles": (int, "cyclical: cycles of the KL weight over the run (Fu et al.: 4)"),
    "cycle_ratio": (float, "cyclical: fraction of each cycle over which the weight rises from 0 to 1 (0.5)"),
    "free_bits": (float, "free-bits: lambda, nats per latent dimension (0.125 = FB(4) over 32 dimensions)"),
    "kl_beta": (float, "beta: the KL weight, below 1 (0.4)"),
    "bn_gamma": (float, "bn-vae: fixed scale of the batch-normalized posterior means (0.6)"),
    "aggressive_steps": (int, "aggressive: most encoder updates before each decoder update (100)"),
    "n_train": (split_size, "use only the first N training examples"),
    "n_valid": (split_size, "use only the first N validation examples"),
    "n_test": (split_size, "use only the first N test examples"),
    "iw_samples": (int, "importance samples K of the NLL estimate (paper: 500 images, 200 text)"),
    "n_eval_nll": (split_size, "test examples that get the importance-weighted NLL (all: every one)"),
}


def config_from_args(args: argparse.Namespace) -> RunConfig:
    overrides = {name: getattr(args, name) for name in TRAIN_OPTIONS}
    overrides["inference"] = args.inference
    overrides["skip"] = None if args.skip is None else args.skip == "on"
    if overrides["dec_kernels"] is not None:
        try:
            overrides["dec_kernels"] = [int(k) for k in overrides["dec_kernels"].split(",")]
        except ValueError:
            raise SkipVAEError(f"--dec-kernels {args.dec_kernels!r}: give comma-separated integers, e.g. 9,7,5,3")
    return make_config(args.dataset, args.model, args.profile, arch=args.arch, seed=args.seed, **overrides)


def profile_config(argv) -> RunConfig | None:
    """The config that `train` would run with no options beyond --dataset/--arch/--model/--profile in `argv`
    (so that `train --profile paper --help` shows the paper's values); None if those do not make a config."""
    pre = argparse.ArgumentParser(add_help=False)
    for name, default in (("dataset", "mnist"), ("arch", None), ("model", "vae"), ("profile", "cpu")):
        pre.add_argument("--" + name, default=default)
    known, _ = pre.parse_known_args(argv or [])
    try:
        return make_config(known.dataset, known.model, known.profile, arch=known.arch)
    except SkipVAEError:
        return None


def add_train_parser(sub, shown: RunConfig | None = None) -> None:
    where = f" at --profile {shown.profile} for {shown.dataset}/{shown.arch}/{shown.model}" if shown else ""
    p = sub.add_parser("train", help="train one model and write its record",
                       description="Train one model. Options left out take the profile's value (paper: the "
                                   "paper's settings, else the official code's); [brackets] show them" + where +
                                   ". --dry-run prints the whole config.")
    p.add_argument("--dataset", choices=DATASETS, default="mnist", help="dataset (default: mnist)")
    p.add_argument("--arch", choices=ARCHS, default=None,
                   help="architecture: pixelcnn or mlp for images, lstm for yahoo (default: pixelcnn / lstm)")
    p.add_argument("--model", type=lambda name: MODEL_ALIASES.get(name, name), choices=MODELS, default="vae",
                   help="model (default: vae); lm = the text decoder without z. The name sets --skip and --inference")
    p.add_argument("--skip", choices=["on", "off"], default=None,
                   help="generative skip connections (overrides --model)")
    p.add_argument("--inference", choices=INFERENCES, default=None,
                   help="amortized, semi-amortized (SVI refinement) or none (overrides --model)")
    p.add_argument("--profile", choices=PROFILES, default="cpu",
                   help="scale: smoke (seconds), cpu (reduced, 2 cores), paper (the paper's settings; needs a GPU)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    for name, (typ, text) in TRAIN_OPTIONS.items():
        value = getattr(shown, name) if shown else None
        shown_value = "" if shown is None else f" [{WHOLE if value is None and name.startswith('n_') else value}]"
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None, help=text + shown_value)
    p.add_argument("--dry-run", action="store_true", help="print the config as JSON and exit without training")
    p.add_argument("--out", default="runs", help="parent folder of the run directory (default: runs)")
    p.add_argument("--data-dir", default=None, help="data folder (default: $SKIPVAE_DATA, ./data, ../shared/data)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="stop cleanly at an epoch boundary before this many seconds; rerun to resume")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--confirm-long", action="store_true",
                   help="start a paper-profile run on a machine without a GPU (days; refused without it)")


def cmd_train(args) -> int:
    import torch

    from skipvae.train import check_precision, train

    cfg = config_from_args(args)  # validated before any data is loaded
    device = check_device(args.device) or ("cuda" if torch.cuda.is_available() else "cpu")
    check_precision(cfg, torch.device(device))  # a dry run says so too when this machine cannot train it
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    check_param("time_budget", args.time_budget, "optional_positive_float")
    check_out_dir("out", args.out)
    confirm_long_runs([cfg], on_gpu(args.device), args.confirm_long)
    run_dir = Path(args.out) / cfg.run_name()
    record = train(cfg, run_dir, data_dir=args.data_dir, device=args.device, progress=not args.no_progress,
                   time_budget_s=args.time_budget)
    print(json.dumps({"run_dir": str(run_dir), "status": record["status"],
                      "metrics": record.get("metrics")}, indent=1))
    return 0


def on_gpu(device: str | None) -> bool:
    """Whether a run on `device` (None: picked automatically) trains on a GPU."""
    import torch

    return torch.cuda.is_available() if device is None else device.startswith("cuda")


def confirm_long_runs(configs: list, gpu: bool, confirmed: bool) -> None:
    """ConfigError (one line with the budget model's estimate) for paper-profile runs on a machine without a GPU
    unless confirmed (--confirm-long); with it, the estimate on stderr. Before any data loads."""
    from skipvae.report.budget import check_long_runs

    note = check_long_runs(configs, gpu, confirmed)
    if note:
        print(f"skipvae: {note}", file=sys.stderr)


def cmd_evaluate(args) -> int:
    path = Path(args.checkpoint)
    if not path.is_file():
        raise SkipVAEError(f"no checkpoint at {path}; give the path of a run's best.pt or last.pt")
    check_param("iw_samples", args.iw_samples, "optional_positive_int")
    check_device(args.device)
    if args.out:
        check_out_file("out", args.out)
    from skipvae.metrics import evaluate
    from skipvae.records import atomic_write_json
    from skipvae.train import build, load_checkpoint

    ckpt = load_checkpoint(path)  # DataError naming the file if it is damaged or not a checkpoint
    try:
        cfg = RunConfig.from_dict(ckpt["config"]).validate()
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{path} holds a config this code cannot run ({' '.join(str(err).split())})") from None
    check_weights_fit(path, cfg, ckpt)  # before any data loads
    if args.iw_samples is not None:
        cfg.iw_samples = args.iw_samples
    data, model = build(cfg, data_dir=args.data_dir, device=args.device)
    model.load_state_dict(ckpt["model"])
    metrics = evaluate(model, data, split=args.split, iw_samples=cfg.iw_samples, iw_chunk=cfg.iw_chunk,
                       n_eval_nll=cfg.n_eval_nll, nll_subset=cfg.nll_subset, seed=cfg.seed,
                       batch_size=cfg.batch_size, nll_amp=cfg.nll_amp)
    if args.out:
        atomic_write_json(args.out, {"checkpoint": str(path), "split": args.split, "config": cfg.to_dict(),
                                     "metrics": metrics})
    print(json.dumps(metrics, indent=1, default=float))
    return 0


def check_weights_fit(path: Path, cfg: RunConfig, ckpt: dict) -> None:
    """ConfigError (one line) when the checkpoint's weights are not those of the model its config describes (another
    model's file, or a config edited by hand), or its run key disagrees with its config; checked on the meta device,
    so before any data loads."""
    import torch

    from skipvae.models import build_model

    if ckpt.get("run_key") not in (None, cfg.key()):
        raise ConfigError(f"{path} names run {ckpt.get('run_name')!r} but its config is run {cfg.run_name()!r}; "
                          f"the file was edited or mixed up, so it cannot be evaluated.")
    weights = ckpt["model"]
    vocab = next((w.shape[0] for k, w in weights.items() if k.endswith("embedding.weight") and w.dim() == 2), None)
    try:
        with torch.device("meta"), warnings.catch_warnings():  # meta: shapes only, no memory, no copies
            warnings.simplefilter("ignore")
            model = build_model(cfg, vocab_size=vocab if cfg.arch == "lstm" else None)
            model.load_state_dict(weights, strict=True)
    except (RuntimeError, ConfigError) as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))[:160]
        raise ConfigError(f"{path} holds the weights of another model than its config ({cfg.run_name()}): "
                          f"{first}") from None


def cmd_data(args) -> int:
    from skipvae.data import all_required_ok, check_data, fetch_data, fetch_target_dir, format_check_table
    from skipvae.data.fetch import ensure_data

    if args.action == "check":
        rows = check_data(args.data_dir)
        print(format_check_table(rows))
        if not all_required_ok(rows):
            print("\nsome files are not OK: run `python -m skipvae data fetch` on a machine with internet, "
                  "or point SKIPVAE_DATA at a verified copy.", file=sys.stderr)
            return 1
        return 0
    if args.action == "ensure":
        root, written = ensure_data(args.data_dir)
        print(f"data OK in {root}" + (f" (fetched {len(written)} file(s))" if written else ""))
        return 0
    dest = fetch_target_dir(args.data_dir)
    paths = fetch_data(dest)
    print(f"fetched {len(paths)} file(s) into {dest}" + "".join(f"\n  {p}" for p in paths))
    return 0


def cmd_sweep(args) -> int:
    from skipvae.sweep import run_sweep

    check_param("piece_seconds", args.piece_seconds, "optional_positive_float")
    check_param("jobs", args.jobs, "positive_int")
    check_param("threads_per_run", args.threads_per_run, "optional_positive_int")
    slurm = parse_slurm(args.slurm or [])
    check_out_dir("out", args.out)
    rows = run_sweep(args.sweep, executor=args.executor, out=args.out, data_dir=args.data_dir, dry_run=args.dry_run,
                     time_budget_s=args.piece_seconds, slurm=slurm, jobs=args.jobs,
                     threads_per_run=args.threads_per_run, wait=not args.no_wait,
                     before_start=lambda configs: confirm_long_runs(configs, sweep_on_gpu(args.executor, slurm),
                                                                    args.confirm_long))
    summary = unfinished_summary(rows)
    if summary:
        print(f"skipvae: {summary}", file=sys.stderr)
        return 1
    return 0


def unfinished_summary(rows: list[dict]) -> str | None:
    """One line naming a sweep's failed runs (and where each one's error is) and its paused runs (and their epoch),
    and how to go on; None when there are none (the rows of run_sweep)."""
    failed = [f"{r['run']}" + (f" ({r['log']})" if r.get("log") else "") for r in rows if r.get("error")]
    paused = [f"{r['run']} (at epoch {r['paused_at']})" for r in rows if r.get("paused_at") is not None]
    parts = [f"{len(names)} of {len(rows)} runs {state}: {', '.join(names)}"
             for names, state in ((failed, "failed"), (paused, "paused")) if names]
    if not parts:
        return None
    fix = "fix the cause and run" if failed else "run"
    return (f"{'; '.join(parts)}; {fix} the same command again: the finished runs are skipped, the others resume "
            f"from their last.pt.")


def sweep_on_gpu(executor: str, slurm: dict) -> bool:
    """Whether a sweep's runs train on a GPU: on Slurm unless gpus_per_node=0 is asked, else this machine's."""
    if executor == "slurm":
        return str(slurm.get("gpus_per_node", "1")).strip() not in ("0", "0.0")
    return on_gpu(None)


def cmd_collect(args) -> int:
    from skipvae.report import collect_sweep

    copied = collect_sweep(args.sweep_dir, args.experiment)
    print(f"{len(copied)} new or changed record(s) copied into results/{args.experiment}/runs"
          + "".join(f"\n  {p}" for p in copied))
    return 0


def cmd_migrate(args) -> int:
    from skipvae.report.store import migrate_results, rekey_run_tables

    moved = migrate_results(args.results)
    print(f"{len(moved)} record(s) migrated to the current schema" + "".join(f"\n  {a.name} -> {b.name}"
                                                                          for a, b in moved))
    tables = rekey_run_tables(args.results)
    print(f"{len(tables)} table(s) keyed by run re-keyed to the records' names" + "".join(f"\n  {p}" for p in tables))
    return 0


def cmd_table(args) -> int:
    """Every table of an experiment's page, as the book shows it (skipvae.report.views), as text or JSON."""
    if args.results:
        if not Path(args.results).is_dir():
            raise ConfigError(f"--results {args.results!r} is not a folder; give a results folder (e.g. results).")
        os.environ["SKIPVAE_RESULTS"] = str(args.results)
    from skipvae.report.views import experiment_views

    shown = experiment_views(args.experiment)
    print(json.dumps([v.to_dict() for v in shown], indent=1) if args.json else "\n".join(v.to_text() for v in shown))
    return 0


def cmd_verdicts(args) -> int:
    from skipvae.report.claims import readme_with_verdicts, verdict_table

    table = verdict_table(args.results)
    if not args.write:
        print(table)
        return 0
    path = Path(args.write)
    text = path.read_text()
    new = readme_with_verdicts(text, table)
    if args.check:
        if new != text:
            print(f"error: the verdict table in {path} is stale; run `python -m skipvae verdicts --write {path}`",
                  file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    print(f"verdict table written to {path}")
    return 0


def cmd_sweeps(args) -> int:
    """Write the sweep files that the experiments declare (skipvae/experiments/<name>.py), or check that the
    committed ones are what their declarations generate."""
    from skipvae.experiments import sweep_files
    from skipvae.records import atomic_write_bytes

    folder = Path(args.dir)
    files = {folder / f"{stem}.yaml": text for stem, text in sweep_files().items()}
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"error: {path} is not what its declaration generates; run `python -m skipvae sweeps --write`",
                  file=sys.stderr)
        return 1 if stale else 0
    check_out_dir("--dir", str(folder))
    for path in stale:
        atomic_write_bytes(path, files[path].encode())
    print(f"{len(stale)} of {len(files)} sweep files written to {folder}")
    return 0


def parse_slurm(pairs: list[str]) -> dict:
    """{key: value} of the --slurm KEY=VALUE arguments; ConfigError for one without '='."""
    for kv in pairs:
        key, eq, _ = kv.partition("=")
        if not eq or not key:
            raise ConfigError(f"--slurm {kv!r} is impossible: give KEY=VALUE, e.g. slurm_partition=gpu")
    return dict(kv.split("=", 1) for kv in pairs)


def make_parser(argv=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m skipvae", description=__doc__)
    parser.add_argument("--version", action="version", version=f"skipvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="check or fetch the datasets")
    d.add_argument("action", choices=["check", "fetch", "ensure"],
                   help="check: verify every file by sha256; fetch: download from the public sources; "
                        "ensure: fetch (into --data-dir, else ./data) only if no verified data folder is found")
    d.add_argument("--data-dir", default=None, help="data folder (default: $SKIPVAE_DATA, ./data, ../shared/data)")

    add_train_parser(sub, profile_config(argv if argv is not None else sys.argv[1:]))

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
                   help="local: one run after another here; slurm: a job array (submitit) that requeues each run "
                        "at its time limit; submitit-local: submitit's local executor (testing)")
    s.add_argument("--out", default="runs", help="parent folder of the run directories (default: runs)")
    s.add_argument("--data-dir", default=None, help="data folder")
    s.add_argument("--piece-seconds", type=float, default=None,
                   help="stop each piece of a run at an epoch boundary before this many seconds, then resume it "
                        "(default: local no limit; slurm the job's time limit less a margin)")
    s.add_argument("--slurm", nargs="*", metavar="KEY=VALUE",
                   help="submitit Slurm parameters, e.g. slurm_partition=gpu timeout_min=240 (default: the "
                        "partition's time limit, else 240 min)")
    s.add_argument("--no-wait", action="store_true",
                   help="slurm: submit and return; run the same command again to see the runs' state")
    s.add_argument("--confirm-long", action="store_true",
                   help="start paper-profile runs on a machine without a GPU (days; refused without it)")
    s.add_argument("--dry-run", action="store_true", help="list the runs and whether they are done")
    s.add_argument("--jobs", type=int, default=1,
                   help="local executor: train this many runs at once (each its share of the threads; on a GPU "
                        "they share the device); the records do not depend on it (default: 1)")
    s.add_argument("--threads-per-run", type=int, default=None,
                   help="CPU threads of each run with --jobs (default: CPU cores // jobs)")

    c = sub.add_parser("collect", help="copy a sweep's finished records into results/<experiment> for the book",
                       description="Copy the finished run records of a sweep folder (runs/<sweep>/<run>/record.json, "
                                   "e.g. from a GPU or a Slurm cluster) into results/<experiment>/runs/, where the "
                                   "notebooks and the book read them.")
    c.add_argument("sweep_dir", help="the sweep's folder, e.g. runs/mnist-paper")
    c.add_argument("--experiment", required=True,
                   choices=sorted(name for name, e in EXPERIMENTS.items() if e.models),
                   help="the experiment whose tables the runs belong to")
    m = sub.add_parser("migrate", help="rewrite older run records under results/ in the current schema",
                       description="Rewrite every results/<experiment>/runs/*.json of an older schema "
                                   "(skipvae.records.migrate) under its current name; each step is listed in the "
                                   "record's 'migrations'.")
    m.add_argument("--results", default=None, help="results folder (default: $SKIPVAE_RESULTS, else results/)")
    t = sub.add_parser("table", help="print an experiment's tables as the book shows them (the paper's beside ours)",
                       description="Print every table of an experiment's book page from the committed records, "
                                   "without building the book: our runs (one row per config), each paper table it "
                                   "rebuilds beside ours at every profile that has runs, and the classification "
                                   "study for mnist.")
    t.add_argument("experiment", choices=sorted(EXPERIMENTS), help="the experiment, e.g. latent_dim (Table 1)")
    t.add_argument("--results", default=None, help="results folder (default: $SKIPVAE_RESULTS, else results/)")
    t.add_argument("--json", action="store_true", help="JSON (title, caption, columns, rows per table) for scripts")
    w = sub.add_parser("sweeps", help="write the sweep files the experiments declare (sweeps/*.yaml)",
                       description="Each sweeps/<name>.yaml is generated from its experiment's declaration in "
                                   "skipvae/experiments/: write them, or check that they are up to date.")
    w.add_argument("--write", action="store_true", help="write the files that differ (the default action)")
    w.add_argument("--check", action="store_true", help="exit 1 when a committed file differs from its declaration")
    w.add_argument("--dir", default=str(Path(__file__).resolve().parent.parent / "sweeps"),
                   help="the sweeps folder (default: sweeps/ of the checkout)")
    v = sub.add_parser("verdicts", help="the claims' verdicts at a glance (a Markdown table from the ledger)")
    v.add_argument("--write", default=None, metavar="README", help="replace the verdict block of this file")
    v.add_argument("--check", action="store_true", help="with --write: exit 1 when the file's block is stale")
    v.add_argument("--results", default=None, help="results folder (default: $SKIPVAE_RESULTS, else results/)")
    return parser


def main(argv=None) -> int:
    args = make_parser(argv).parse_args(argv)
    handlers = {"data": cmd_data, "train": cmd_train, "evaluate": cmd_evaluate, "sweep": cmd_sweep,
                "collect": cmd_collect, "migrate": cmd_migrate,
                "table": cmd_table, "verdicts": cmd_verdicts, "sweeps": cmd_sweeps}
    try:
        return handlers[args.command](args)
    except Interrupted as err:
        print(f"skipvae: {err}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print("skipvae: stopped at once (Ctrl-C); the last checkpoint written is intact: run the same command again "
              "to resume.", file=sys.stderr)
        return 130
    except SkipVAEError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
