"""The training engine: one `RunConfig` in, one JSON record out.

A run lives in its own directory:
    last.pt      checkpoint after the last finished epoch (model, optimizer, RNG, history), written atomically
    last.prev.pt the checkpoint of the epoch before (the fallback if last.pt is damaged)
    best.pt      the model with the best validation negative ELBO so far
    record.json  the final record: config, test metrics, curves, best epoch, provenance, wall time
    train.log    one line per epoch (epoch, updates, losses, seconds), also printed to stderr

`train(cfg, run_dir)` resumes from `last.pt` when it exists, and an interrupted-then-resumed run ends with
exactly the numbers of an uninterrupted one on CPU: data order and binarization depend only on (seed, epoch),
and the torch RNG state (reparameterization noise, dropout) is saved with every checkpoint.

Damage is survived or reported: a run folder is locked while a process trains in it (`.lock`), temporary files
of interrupted writes are removed when a run starts, a checkpoint that does not load is reported by path and
reason and the run falls back to `last.prev.pt` or starts over, and a damaged record is rebuilt. Every checkpoint
carries its run key (another run's file is refused) and a checksum of its contents (a bit flip counts as damage).
SIGINT or SIGTERM stops at the end of the epoch, once last.pt is written; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import math
import os
import pickle
import signal
import socket
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from skipvae import objectives
from skipvae.config import RunConfig
from skipvae.errors import ConfigError, DataError, Interrupted, TrainingError
from skipvae.params import check_device
from skipvae.records import (RunRecord, atomic_torch_save, atomic_write_json, finished_record, note, payload_digest,
                             provenance, remove_stale_temporaries)

LAST, PREV, BEST, RECORD, LOCK, LOG = "last.pt", "last.prev.pt", "best.pt", "record.json", ".lock", "train.log"
CHECKPOINT_KEYS = ("config", "model", "optimizer", "state", "torch_rng", "cuda_rng")


@dataclass
class TrainState:
    """Everything besides the model and optimizer that a resumed run needs."""

    epoch: int = 0  # epochs finished
    lr: float = 0.0
    best_val: float = math.inf
    best_epoch: int = -1
    stale_epochs: int = 0  # epochs since validation improved
    decaying: bool = False  # text schedule: lr halving has started
    history: list = field(default_factory=list)
    train_time_s: float = 0.0
    stopped_early: bool = False
    aggressive: bool = True  # objective 'aggressive': still in the aggressive phase
    last_mi: float = 0.0  # objective 'aggressive': the validation MI after the last aggressive epoch


def pick_device(device: str | None = None) -> torch.device:
    """`device` if this machine has it (ConfigError otherwise), else cuda when available, else cpu."""
    if check_device(device):
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_bf16() -> bool:
    """Whether this CPU runs oneDNN's bf16 kernels (AVX512-BF16 or AMX); without them its bf16 LSTM does not run."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_precision(cfg: RunConfig, device: torch.device) -> None:
    """ConfigError, before any data loads, for bf16 training (amp) of the LSTM on a CPU without bf16 kernels:
    oneDNN cannot build its bf16 LSTM there, and an fp32 fallback would not be the run the config names."""
    if cfg.amp and cfg.arch == "lstm" and device.type == "cpu" and not cpu_has_bf16():
        raise ConfigError("amp=True (bf16 training) of the LSTM needs a CPU with bf16 kernels (AVX512-BF16 or AMX) "
                          "and this one has none; train with --amp false (fp32: a different config and run key) "
                          "or on a machine that has them.")
    if cfg.nll_amp and cfg.arch == "lstm" and device.type == "cpu" and not cpu_has_bf16():
        raise ConfigError("nll_amp=True (the IW-NLL in bf16) of the LSTM needs a CPU with bf16 kernels (AVX512-BF16 "
                          "or AMX) and this one has none; evaluate with nll_amp false (a different config and run "
                          "key) or on a machine that has them.")


def kl_weight(cfg: RunConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The KL weight of a training step, as cfg's objective sets it (skipvae.objectives): for the ELBO the warm-up,
    beta rising linearly from beta_start to 1 over `warmup_epochs` epochs (per step), 1 without."""
    return objectives.build(cfg).weight(epoch, step, steps_per_epoch)


def make_optimizer(cfg: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":  # compile_step: Adam's fused kernel, the same update in one pass over the parameters
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), fused=cfg.compile_step or None)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; valid choices: adam, sgd")


def build(cfg: RunConfig, data_dir=None, device=None):
    """Data, model and device for a config (the model is seeded by cfg.seed)."""
    from skipvae.data import load_dataset
    from skipvae.models import build_model

    data = load_dataset(cfg, data_dir=data_dir)
    torch.manual_seed(cfg.seed)
    vocab_size = len(data.vocab) if hasattr(data, "vocab") else None
    model = build_model(cfg, vocab_size=vocab_size).to(pick_device(device))
    return data, model


def training_forward(cfg: RunConfig, model: torch.nn.Module):
    """What run_epoch calls for the loss: the model, or with cfg.compile_step the model compiled by inductor
    (dynamic=False at the fixed batch; fallback_random keeps eager's reparameterization noise, so a compiled run
    draws the noise of an eager one and differs from it by rounding only)."""
    if not cfg.compile_step:
        return model
    import torch._inductor.config as inductor

    inductor.fallback_random = True
    inductor.compile_threads = 1  # a run keeps to its lane
    return torch.compile(model, dynamic=False)


def training_updates(cfg: RunConfig, data) -> int:
    """Optimizer updates of a whole run on `data` (loaded with cfg's sizes): epochs * ceil(N_train / batch_size),
    the last, partial batch of an epoch included as run_epoch takes it."""
    return cfg.epochs * math.ceil(data.num_examples("train") / cfg.batch_size)


def run_epoch(model, data, optimizer, cfg: RunConfig, epoch: int, device, progress: bool,
              aggressive: bool = False) -> dict:
    """One pass over the training split; returns the batch-mean training loss (cfg's objective), reconstruction
    and KL. aggressive=True (objective 'aggressive', in its aggressive phase): encoder-only inner updates before
    each decoder-only update (aggressive_encoder_updates), counted in 'inner_steps'."""
    model.train()
    objective = objectives.build(cfg)  # the one hook: the step's KL weight and its loss
    batches = list(data.batches("train", cfg.batch_size, epoch=epoch, seed=cfg.seed))
    totals = {"loss": 0.0, "rec": 0.0, "kl": 0.0}
    n, inner = 0, 0
    picker = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # the inner loop's batches, resumable
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
    for step, (x, _) in enumerate(bar):
        x = x.to(device, non_blocking=True)
        beta = objective.weight(epoch, step, len(batches))
        if cfg.compile_step:
            beta = torch.tensor(beta)  # a graph input: a KL schedule does not recompile the step
        if aggressive:
            inner += aggressive_encoder_updates(model, batches, optimizer, cfg, objective, beta, device, picker)
        out, loss = training_step_loss(model, x, cfg, objective, beta)
        if not torch.isfinite(loss):
            kept = f"the last good checkpoint (end of epoch {epoch}) is kept" if epoch else "no epoch had finished"
            raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {step + 1}; {kept}. "
                                f"Lower --lr or check the data.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if aggressive:  # the decoder's update only: the encoder had its own
            drop_grads(p for name, p in model.named_parameters() if not is_decoder(name))
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        b = x.shape[0]
        totals["loss"] += loss.item() * b
        totals["rec"] += out["rec"].sum().item()
        totals["kl"] += out["kl"].sum().item()
        n += b
        bar.set_postfix(loss=f"{totals['loss'] / n:.2f}", kl=f"{totals['kl'] / n:.2f}")
    extra = {"inner_steps": inner} if objective.aggressive else {}
    return {k: v / max(n, 1) for k, v in totals.items()} | {"beta": objective.weight(epoch + 1, 0, 1), "examples": n,
                                                            "steps": len(batches)} | extra


def training_step_loss(model, x, cfg: RunConfig, objective, beta) -> tuple[dict, torch.Tensor]:
    """The model's outputs on x at KL weight beta (bf16 autocast with cfg.amp) and the objective's fp32 loss."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=cfg.amp):  # loss, KL: fp32
        out = model(x, beta=beta)
    return out, objective.loss(out, beta).float()


def is_decoder(name: str) -> bool:
    """Whether a parameter (model.named_parameters(); a compiled model's names start with _orig_mod.) is the
    decoder's; the others (encoder, BN-VAE's shift) form the inference network."""
    return name.removeprefix("_orig_mod.").startswith("decoder.")


def drop_grads(params) -> None:
    """Set the gradients of `params` to None: the optimizer's step leaves them (and their state) alone."""
    for p in params:
        p.grad = None


def aggressive_encoder_updates(model, batches, optimizer, cfg: RunConfig, objective, beta, device,
                               picker: torch.Generator) -> int:
    """He et al. 2019's inner loop: encoder-only updates on random training batches until the loss stops
    improving (objectives.encoder_converged) or objective.max_inner updates; returns how many it made."""
    losses = []
    while len(losses) < objective.max_inner:
        x = batches[int(torch.randint(len(batches), (1,), generator=picker))][0].to(device, non_blocking=True)
        _, loss = training_step_loss(model, x, cfg, objective, beta)
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss ({loss.item()}) in an aggressive encoder update; lower --lr.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        drop_grads(p for name, p in model.named_parameters() if is_decoder(name))
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        if objectives.encoder_converged(losses):
            break
    return len(losses)


def validate(model, data, cfg: RunConfig, device, split: str = "valid") -> dict:
    """Negative ELBO (beta = 1) on a split, with a fixed noise seed so it does not disturb the training RNG, and the
    collapse diagnostics of the same posteriors (refined for SA models): 'mi' (I_q over the split, one z each) and
    'au' (active units at 0.01), so that every record holds KL, MI and AU against training time."""
    from skipvae.metrics import active_units, mutual_information

    model.eval()
    totals = {"neg_elbo": 0.0, "rec": 0.0, "kl": 0.0}
    n, mus, logvars = 0, [], []
    with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):
        torch.manual_seed(1234)
        for x, _ in data.batches(split, cfg.batch_size, shuffle=False):
            x = x.to(device)
            with torch.set_grad_enabled(cfg.semi_amortized):  # SVI refinement needs gradients
                out = model(x, beta=1.0)
            totals["rec"] += out["rec"].sum().item()
            totals["kl"] += out["kl"].sum().item()
            mus.append(out["mu"].detach().float().cpu())
            logvars.append(out["logvar"].detach().float().cpu())
            n += x.shape[0]
        mu, logvar = torch.cat(mus), torch.cat(logvars)
        curve = {"mi": mutual_information(mu, logvar, generator=torch.Generator().manual_seed(0)) if n > 1 else 0.0,
                 "au": active_units(mu, 0.01) if n > 1 else 0}
    totals["neg_elbo"] = totals["rec"] + totals["kl"]
    return {k: v / max(n, 1) for k, v in totals.items()} | curve


def check_finite_validation(va: dict, epoch: int) -> None:
    """TrainingError, as for a non-finite training loss, when a validation number of epoch `epoch` + 1 is NaN/inf
    (the checkpoint of the epoch before is kept; nothing of this epoch is written)."""
    bad = {k: v for k, v in va.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        kept = f"the last good checkpoint (end of epoch {epoch}) is kept" if epoch else "no epoch had finished"
        raise TrainingError(f"non-finite validation {', '.join(f'{k}={v}' for k, v in bad.items())} at epoch "
                            f"{epoch + 1}; {kept}. Lower --lr or check the data.")


def save_checkpoint(run_dir: Path, model, optimizer, state: TrainState, cfg: RunConfig) -> None:
    """last.pt of this epoch; the one it replaces becomes last.prev.pt."""
    atomic_torch_save(with_digest({
        "config": cfg.to_dict(),
        **run_label(cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "state": vars(state),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }), run_dir / LAST, previous=run_dir / PREV)


def load_checkpoint(path: Path, map_location="cpu", keys=("config", "model")) -> dict:
    """Load a checkpoint safely (weights_only=True: tensors and plain containers only).

    A file that is missing, empty, truncated or not a skipvae checkpoint raises DataError naming it and why."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except EOFError:
        raise DataError(f"{path} is not a readable checkpoint: the file is empty") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a checkpoint; give the path of a run's best.pt or last.pt") from None
    except Exception as e:  # noqa: BLE001  a damaged file fails in many ways (bit flips: any error of the unpickler)
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path} is not a readable checkpoint: it is truncated or not a PyTorch file") from None
        if isinstance(e, pickle.UnpicklingError):
            raise DataError(f"{path} is not a skipvae checkpoint: it holds objects other than tensors and plain "
                            f"containers, which a safe load refuses") from None
        raise DataError(f"{path} is not a readable checkpoint: it is damaged "
                        f"({str(e).splitlines()[0][:120]})") from None
    missing = [k for k in keys if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise DataError(f"{path} is not a skipvae checkpoint: it lacks {missing}")
    kinds = {"config": dict, "model": dict, "state": dict, "optimizer": dict, "torch_rng": torch.Tensor,
             "cuda_rng": list}
    bad = [k for k in keys if not isinstance(ckpt[k], kinds.get(k, object))]
    if "digest" in ckpt and payload_digest({k: v for k, v in ckpt.items() if k != "digest"}) != ckpt["digest"]:
        raise DataError(f"{path} is not a readable checkpoint: it is damaged (its contents do not match the "
                        f"checksum written with it)")
    if bad or ("model" in keys and not all(isinstance(v, torch.Tensor) for v in ckpt["model"].values())):
        raise DataError(f"{path} is not a readable checkpoint: it is damaged (wrong types in {bad or ['model']})")
    return ckpt


def with_digest(ckpt: dict) -> dict:
    """`ckpt` with its payload_digest (under 'digest'), which load_checkpoint checks."""
    return {**ckpt, "digest": payload_digest(ckpt)}


def run_label(cfg: RunConfig) -> dict:
    """What every checkpoint carries to name its run: the run key and name (RunConfig.key, run_name)."""
    return {"run_key": cfg.key(), "run_name": cfg.run_name()}


def check_owner(ckpt: dict, cfg: RunConfig, path: Path) -> None:
    """ConfigError (one line) when the checkpoint at `path` belongs to another run than `cfg`'s: its run key (or,
    in checkpoints older than run keys, its config) differs."""
    key = ckpt.get("run_key")
    if (key is not None and key != cfg.key()) or not cfg.same_run(ckpt.get("config")):
        other = ckpt.get("run_name") or key or "another run"
        raise ConfigError(f"{path} was written by a different config (run {other}), not by {cfg.run_name()}; move "
                          f"it away, or use a new output directory.")


def restore(run_dir: Path, cfg: RunConfig, model, optimizer, device) -> TrainState | None:
    """Load the newest checkpoint that is intact (last.pt, else last.prev.pt) into model and optimizer and return
    its state; None when there is none (a damaged one is reported and deleted, and the run starts over with the
    model and optimizer as they were). A checkpoint of another run is refused (check_owner)."""
    fresh = {"model": copy.deepcopy(model.state_dict()), "optimizer": copy.deepcopy(optimizer.state_dict()),
             "torch_rng": torch.get_rng_state()}
    for name, fallback in ((LAST, f"falling back to {PREV}"), (PREV, "starting over from epoch 0")):
        path = run_dir / name
        if not path.exists():
            if name == LAST and (run_dir / PREV).exists():
                note(f"{path} is missing (interrupted while being replaced); {fallback}")
            continue
        more = fallback if name == PREV or (run_dir / PREV).exists() else "starting over from epoch 0"
        try:
            ckpt = load_checkpoint(path, map_location=device, keys=CHECKPOINT_KEYS)
        except DataError as err:
            note(f"{err}; deleting it and {more}")
            path.unlink()
            continue
        check_owner(ckpt, cfg, path)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            torch.set_rng_state(ckpt["torch_rng"].cpu())
            if ckpt["cuda_rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["cuda_rng"]])
            state = TrainState(**ckpt["state"])
        except Exception as err:  # noqa: BLE001  damage that loads: wrong shapes, keys or types (e.g. bit flips)
            model.load_state_dict(fresh["model"])
            optimizer.load_state_dict(fresh["optimizer"])
            torch.set_rng_state(fresh["torch_rng"])
            why = " ".join(str(err).split())[:120]
            note(f"{path} is not a readable checkpoint: it is damaged ({type(err).__name__}: {why}); deleting it "
                 f"and {more}")
            path.unlink()
            continue
        if name == PREV:
            note(f"resuming from {path} (end of epoch {state.epoch})")
        return state
    return None


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold run_dir/.lock (an exclusive flock, released when the process ends, even by kill -9) while training;
    TrainingError naming the holder when another process has it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise TrainingError(f"{run_dir} is in use: {holder} is training in it. Wait for it to finish (or stop "
                                f"it), then run again.") from None
        f.truncate(0)
        f.write(f"pid {os.getpid()} on {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        f.flush()
        yield


_STOP = {"signal": None}  # set by stop_requests' handler: the signal that asked training to stop


@contextlib.contextmanager
def stop_requests():
    """While training: SIGINT or SIGTERM asks to stop at the next safe point (the end of the epoch, once last.pt is
    written: check_stop); a second SIGINT stops at once (KeyboardInterrupt). The main thread only; the previous
    handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield _STOP
        return

    def handler(signum, frame):
        if _STOP["signal"] is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        _STOP["signal"] = signum
        note(f"{signal.Signals(signum).name}: stopping at the end of this epoch, once last.pt is written "
             f"(Ctrl-C again to stop at once)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    _STOP["signal"] = None
    try:
        yield _STOP
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _STOP["signal"] = None


def check_stop(run_dir: Path, epoch: int) -> None:
    """Interrupted (one line saying how to resume) when a signal asked to stop; call at safe points only."""
    signum = _STOP["signal"]
    if signum is not None:
        where = f"at the end of epoch {epoch}, {run_dir / LAST} written" if epoch else "before the first epoch"
        raise Interrupted(f"stopped by {signal.Signals(signum).name} {where}; run the same command again to resume.",
                          signum)


def log_epoch(run_dir: Path, cfg: RunConfig, state: TrainState) -> None:
    """One line per epoch (epoch, updates, losses, seconds) to stderr and to run_dir/train.log."""
    h = state.history[-1]
    line = (f"{run_dir.name} epoch {h['epoch']}/{cfg.epochs}: {h['updates']} updates, train loss "
            f"{h['train_loss']:.3f} rec {h['train_rec']:.3f} kl {h['train_kl']:.3f} | val -elbo "
            f"{h['val_neg_elbo']:.3f} kl {h['val_kl']:.3f} | {h['time_s']:.1f}s")
    tqdm.write(f"skipvae: {line}", file=sys.stderr)
    with contextlib.suppress(OSError), open(run_dir / LOG, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def update_lr_schedule(cfg: RunConfig, state: TrainState, improved: bool, optimizer) -> None:
    """Text schedule (official SA-VAE): after `lr_decay_after` epochs, halve the lr whenever validation does not
    improve; once halving has started, halve every epoch; stop when lr < min_lr."""
    if cfg.lr_decay_after is None:
        return
    if state.epoch >= cfg.lr_decay_after and (not improved or state.decaying):
        state.decaying = True
        state.lr *= cfg.lr_decay
        for group in optimizer.param_groups:
            group["lr"] = state.lr
        if state.lr < cfg.min_lr:
            state.stopped_early = True


def train(cfg: RunConfig, run_dir: str | Path, data_dir=None, device=None, progress: bool = True,
          time_budget_s: float | None = None, evaluate_test: bool = True, max_epochs: int | None = None) -> dict:
    """Train (or resume) one run; returns its record (also written to run_dir/record.json when finished).

    A call trains one *piece*: it stops cleanly at an epoch boundary once `max_epochs` epochs were trained in
    this call, or when the next epoch would overrun `time_budget_s` (but always after one epoch at least, so that an
    epoch longer than the budget still makes progress); it then returns {'status': 'paused'} and a later call
    resumes from run_dir/last.pt. Only one process at a time trains in a run folder (run_lock).
    """
    cfg.validate()
    device = pick_device(device)  # a device this machine has, checked before any data loads
    check_precision(cfg, device)
    run_dir = Path(run_dir)
    record = finished_record(cfg, run_dir / RECORD)
    if record is not None:
        return record
    with run_lock(run_dir):
        for tmp in remove_stale_temporaries(run_dir):
            note(f"removed {tmp}, a temporary file left by an interrupted write")
        with stop_requests():
            return _train_piece(cfg, run_dir, data_dir, device, progress, time_budget_s, evaluate_test, max_epochs)


def _train_piece(cfg: RunConfig, run_dir: Path, data_dir, device, progress, time_budget_s, evaluate_test,
                 max_epochs) -> dict:
    started = time.time()
    origin = provenance(cfg.seed, cfg.profile, device)  # the code as it was when this piece started
    torch.use_deterministic_algorithms(device.type == "cpu", warn_only=True)
    data, model = build(cfg, data_dir=data_dir, device=device)
    if cfg.batch_size > data.num_examples("train"):
        raise ConfigError(f"batch_size={cfg.batch_size} is impossible: the training split has only "
                          f"{data.num_examples('train')} examples; use --batch-size {data.num_examples('train')} "
                          f"or less.")
    optimizer = make_optimizer(cfg, model)
    state = restore(run_dir, cfg, model, optimizer, device)
    if (run_dir / BEST).exists():
        with contextlib.suppress(DataError):  # a damaged best.pt is finish's to report or rebuild
            check_owner(load_checkpoint(run_dir / BEST), cfg, run_dir / BEST)
    if state is None:
        (run_dir / BEST).unlink(missing_ok=True)  # of a damaged run that starts over
        state = TrainState(lr=cfg.lr)
        torch.manual_seed(cfg.seed + 1)  # training noise stream, independent of the init stream

    forward = training_forward(cfg, model)
    check_stop(run_dir, state.epoch)
    epochs_this_call = 0
    while state.epoch < cfg.epochs and not state.stopped_early:
        if max_epochs is not None and epochs_this_call >= max_epochs:
            return {"status": "paused", "epochs_completed": state.epoch}
        if time_budget_s is not None and state.history and epochs_this_call > 0:  # a piece trains one epoch at least
            per_epoch = state.history[-1]["time_s"]
            if time.time() - started + 1.2 * per_epoch > time_budget_s:
                return {"status": "paused", "epochs_completed": state.epoch}
        t0 = time.time()
        aggressive = cfg.objective == "aggressive" and state.aggressive
        tr = run_epoch(forward, data, optimizer, cfg, state.epoch, device, progress, aggressive=aggressive)
        va = validate(model, data, cfg, device)
        check_finite_validation(va, state.epoch)
        if aggressive:  # the phase goes on while the validation MI rises
            state.aggressive, state.last_mi = objectives.mi_still_rising(state.last_mi, va["mi"]), va["mi"]
        state.epoch += 1
        epochs_this_call += 1
        improved = va["neg_elbo"] < state.best_val
        if improved:
            state.best_val, state.best_epoch = va["neg_elbo"], state.epoch
            atomic_torch_save(with_digest({"config": cfg.to_dict(), **run_label(cfg), "model": model.state_dict(),
                                           "epoch": state.epoch}), run_dir / BEST)
        dt = time.time() - t0
        state.train_time_s += dt
        state.history.append({"epoch": state.epoch, "lr": state.lr, "train_loss": tr["loss"],
                              "train_rec": tr["rec"], "train_kl": tr["kl"], "beta": tr["beta"],
                              "val_neg_elbo": va["neg_elbo"], "val_rec": va["rec"], "val_kl": va["kl"],
                              "val_mi": va["mi"], "val_au_0.01": va["au"],
                              "updates": (state.history[-1].get("updates", 0) if state.history else 0) + tr["steps"],
                              "time_s": dt, "examples_per_s": tr["examples"] / dt}
                             | ({"aggressive": aggressive, "inner_steps": tr["inner_steps"]} if "inner_steps" in tr
                                else {}))
        update_lr_schedule(cfg, state, improved, optimizer)
        save_checkpoint(run_dir, model, optimizer, state, cfg)
        log_epoch(run_dir, cfg, state)
        check_stop(run_dir, state.epoch)

    record = finish(cfg, run_dir, data, model, state, device, evaluate_test, origin, data_dir)
    atomic_write_json(run_dir / RECORD, record)
    return record


def classify_posterior_means(model, cfg: RunConfig, data, data_dir=None) -> dict:
    """C5: classifiers fitted on the posterior means of the training split, scored on the test split's means
    (the whole splits unless cfg.clf_n_train / clf_n_test cut them, whatever the VAE trained on). Amortized means
    (the encoder's output) for every model, so SA-VAE is compared on its encoder."""
    import dataclasses

    from skipvae.data import load_dataset
    from skipvae.metrics import by_classifier, classification_accuracy, posterior_means

    if (cfg.clf_n_train, cfg.clf_n_test) != (cfg.n_train, cfg.n_test):  # other splits than the run's: load them
        data = load_dataset(dataclasses.replace(cfg, n_train=cfg.clf_n_train, n_test=cfg.clf_n_test),
                            data_dir=data_dir)
    train_mu, train_y = posterior_means(model, data, "train", seed=cfg.seed)
    test_mu, test_y = posterior_means(model, data, "test", seed=cfg.seed)
    return by_classifier(classification_accuracy(train_mu, train_y, test_mu, test_y, seed=cfg.seed,
                                                 mlp_epochs=cfg.clf_epochs))


def finish(cfg: RunConfig, run_dir: Path, data, model, state: TrainState, device, evaluate_test: bool,
           origin: dict, data_dir=None) -> dict:
    """Load the best model, evaluate it on the test set, and assemble the run's record."""
    from skipvae.metrics import evaluate

    try:
        best = load_checkpoint(run_dir / BEST, map_location=device)
        check_owner(best, cfg, run_dir / BEST)
    except DataError as err:
        if state.best_epoch != state.epoch:
            raise TrainingError(f"{err}. It held the best model (epoch {state.best_epoch}), which the last "
                                f"checkpoint (epoch {state.epoch}) cannot restore; delete {run_dir} to train the "
                                f"run again.") from None
        note(f"{err}; rebuilding it from {LAST}, which holds the same epoch ({state.epoch})")
        best = with_digest({"config": cfg.to_dict(), **run_label(cfg), "model": model.state_dict(),
                            "epoch": state.epoch})
        atomic_torch_save(best, run_dir / BEST)
    model.load_state_dict(best["model"])
    t0 = time.time()
    metrics = {}
    if evaluate_test:  # at the training batch size: the SVI objective of SA models is a batch mean
        metrics = evaluate(model, data, split="test", iw_samples=cfg.iw_samples, iw_chunk=cfg.iw_chunk,
                           n_eval_nll=cfg.n_eval_nll, nll_subset=cfg.nll_subset, seed=cfg.seed,
                           batch_size=cfg.batch_size, nll_amp=cfg.nll_amp)
    if evaluate_test and getattr(data, "num_classes", None):
        metrics["classification"] = classify_posterior_means(model, cfg, data, data_dir)
    eval_time = time.time() - t0
    steps = max(len(state.history), 1)
    return RunRecord(
        status="finished", name=run_dir.name, config=cfg.to_dict(), metrics=metrics, best_epoch=state.best_epoch,
        best_val_neg_elbo=state.best_val, epochs_completed=state.epoch, stopped_early=state.stopped_early,
        history=state.history, train_time_s=state.train_time_s, eval_time_s=eval_time,
        wall_time_s=state.train_time_s + eval_time,
        train_examples_per_s=sum(h["examples_per_s"] for h in state.history) / steps, provenance=origin).to_dict()
