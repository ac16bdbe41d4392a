"""Training objectives: the ELBO and the common remedies for posterior collapse, one value of `cfg.objective` each.

An objective decides two things of a training step, and nothing else:
    weight(epoch, step, steps_per_epoch)  w_t, the KL weight of the step (also SVI's, for SA models)
    loss(out, w)                          the scalar to minimize, from the model's outputs rec, kl, mu, logvar [B, ...]

    elbo        mean_b (rec_b + w_t kl_b), w_t the linear warm-up when warmup_epochs > 0 (else 1): the paper's
    kl-anneal   the same, warmup_epochs >= 1 required (make_config gives images 10 epochs from 0.1, at most
                half of the profile's)
    cyclical    w_t of Fu et al. 2019: `cycles` linear rises from 0 to 1, each over `cycle_ratio` of its cycle
    free-bits   mean_b rec_b + w_t sum_d max(lambda, mean_b kl_bd)  (Kingma et al. 2016, per dimension)
    beta        mean_b (rec_b + kl_beta w_t kl_b), kl_beta < 1
    bn-vae      the ELBO, with the posterior means batch-normalized at a fixed scale (MeanBatchNorm, in the model)
    aggressive  the ELBO, with encoder-only inner updates while the validation MI rises (He et al. 2019; train.py)

kl-anneal and warmup_epochs: the warm-up always was the config's `warmup_epochs` (0 for images, 10 epochs from
beta_start = 0.1 for text, as the paper), and objective 'elbo' keeps meaning exactly that, so the committed text
records (elbo with 10 warm-up epochs) keep their keys. 'kl-anneal' names the remedy on the axis: the same schedule,
refused without warm-up, and given KL_ANNEAL_EPOCHS (10, at most half of the profile's epochs:
skipvae.config.kl_anneal_epochs) by make_config where the family has none (images); on text it computes what 'elbo'
does, under another name and key. Every other remedy but cyclical (whose cycles
replace the warm-up, so it needs warmup_epochs = 0) multiplies its KL term by the same warm-up weight, as the He
et al. and BN-VAE code bases anneal every model.

Validation and evaluation always compute the true ELBO (rec + kl at weight 1): a remedy changes how the model is
trained, never what is reported. `build(cfg)` is the one entry point; REGISTRY maps each name to its class.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

AGGRESSIVE_WINDOW = 15  # aggressive: the encoder's loss is compared over windows of this many inner steps


def linear_warmup(epoch: int, step: int, steps_per_epoch: int, warmup_epochs: int, beta_start: float) -> float:
    """w = min(1, beta_start + (1 - beta_start) (epoch + step / steps_per_epoch) / warmup_epochs); 1 without
    warm-up (warmup_epochs = 0)."""
    if warmup_epochs <= 0:
        return 1.0
    progress = (epoch + step / max(steps_per_epoch, 1)) / warmup_epochs
    return min(1.0, beta_start + (1.0 - beta_start) * progress)


def cyclical_weight(update: int, total: int, cycles: int, ratio: float) -> float:
    """Fu et al. 2019's schedule over `total` updates (update = 0 .. total - 1):

        tau = (update mod (total / M)) / (total / M),    w = min(1, tau / R)

    so every cycle starts at 0, reaches 1/2 a quarter of the way in (R = 1/2) and stays at 1 over its second half.
    Computed in integers, (M update mod total) / total = tau, so the cycle starts are exact."""
    tau = (cycles * update % total) / total if total > 0 else 0.0
    return min(1.0, tau / ratio)


def kl_per_dimension(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(z_d|x_b) || N(0, 1)) = 1/2 (mu^2 + exp(logvar) - 1 - logvar), per example and dimension [B, D]."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def free_bits_kl(mu: Tensor, logvar: Tensor, lam: float) -> Tensor:
    """sum_d max(lambda, mean_b KL_bd): each dimension's batch-mean KL, clamped below at lambda (a scalar).

    A dimension whose batch KL is below lambda costs lambda whatever the encoder does there, so it gets no gradient
    from the KL term; above lambda it is the ordinary KL. With every dimension above lambda this is the batch-mean
    KL itself."""
    return kl_per_dimension(mu, logvar).mean(0).clamp_min(lam).sum()


def encoder_converged(losses: list[float], window: int = AGGRESSIVE_WINDOW) -> bool:
    """He et al. 2019's inner-loop test, checked every `window` steps: the mean loss of the last window is above
    that of the window before (the encoder's objective stopped improving)."""
    n = len(losses)
    if n < 2 * window or n % window:
        return False
    return sum(losses[-window:]) > sum(losses[-2 * window:-window])


def mi_still_rising(previous_mi: float, mi: float) -> bool:
    """He et al. 2019's outer test, after each aggressive epoch: stay aggressive while I_q does not fall
    (mi >= previous_mi; the first epoch compares with 0, as the official code)."""
    return mi >= previous_mi


@dataclass(frozen=True)
class Elbo:
    """The negative ELBO: loss = mean_b (rec_b + w_t kl_b), w_t = linear_warmup (1 when warmup_epochs = 0).

    Also `kl-anneal` (warmup_epochs >= 1, the same computation under the remedy's name) and `bn-vae` (the remedy
    is in the model). The loss is the model's own out['loss'], so the ELBO's numbers are unchanged."""

    warmup_epochs: int = 0
    beta_start: float = 0.1
    aggressive = False  # encoder-only inner updates (Aggressive)

    @classmethod
    def from_config(cls, cfg) -> "Elbo":
        return cls(warmup_epochs=cfg.warmup_epochs, beta_start=cfg.beta_start)

    def weight(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        return linear_warmup(epoch, step, steps_per_epoch, self.warmup_epochs, self.beta_start)

    def loss(self, out: dict, weight) -> Tensor:
        return out["loss"]


@dataclass(frozen=True)
class Cyclical(Elbo):
    """Cyclical annealing (Fu et al., NAACL 2019): w_t = cyclical_weight(t, T, M, R) over the run's T updates,
    M = cycles (4), R = cycle_ratio (0.5), the published defaults; loss = mean_b (rec_b + w_t kl_b)."""

    epochs: int = 1
    cycles: int = 4
    ratio: float = 0.5

    @classmethod
    def from_config(cls, cfg) -> "Cyclical":
        return cls(epochs=cfg.epochs, cycles=cfg.cycles, ratio=cfg.cycle_ratio)

    def weight(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        return cyclical_weight(epoch * steps_per_epoch + step, self.epochs * steps_per_epoch, self.cycles,
                               self.ratio)


@dataclass(frozen=True)
class FreeBits(Elbo):
    """Free bits (Kingma et al. 2016), per latent dimension on the batch-mean KL:

        loss = mean_b rec_b + w_t sum_d max(lambda, mean_b KL_bd),    lambda = free_bits (nats per dimension)

    the form of Kingma et al. (KL of each group averaged over the minibatch, groups = dimensions) that Li et al.
    2019 report as FB on Yahoo. The default lambda = 0.125 is the FB(4) row of the BN-VAE table: a target of 4
    nats over Yahoo's 32 dimensions, split per dimension as valdersoul/bn-vae's `dim_target_kl = target_kl / nz`
    (that code's `--fb 2` masks each example's KL_bd below the target instead of clamping the batch mean)."""

    lam: float = 0.125

    @classmethod
    def from_config(cls, cfg) -> "FreeBits":
        return cls(warmup_epochs=cfg.warmup_epochs, beta_start=cfg.beta_start, lam=cfg.free_bits)

    def loss(self, out: dict, weight) -> Tensor:
        return out["rec"].mean() + weight * free_bits_kl(out["mu"], out["logvar"], self.lam)


@dataclass(frozen=True)
class BetaVAE(Elbo):
    """beta-VAE with beta < 1 as a collapse remedy: loss = mean_b (rec_b + beta w_t kl_b), beta = kl_beta (0.4, the
    beta-VAE row of He et al. 2019 quoted by BN-VAE), w_t the warm-up (1 without)."""

    kl_beta: float = 0.4

    @classmethod
    def from_config(cls, cfg) -> "BetaVAE":
        return cls(warmup_epochs=cfg.warmup_epochs, beta_start=cfg.beta_start, kl_beta=cfg.kl_beta)

    def weight(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        return self.kl_beta * super().weight(epoch, step, steps_per_epoch)


@dataclass(frozen=True)
class Aggressive(Elbo):
    """Aggressive encoder training (He et al., ICLR 2019), the ELBO's loss and weight. While aggressive, each
    decoder update is preceded by encoder-only updates on random training batches until `encoder_converged`
    (at most `max_inner` = aggressive_steps, the official cap of 100), and the decoder update leaves the encoder
    alone; after each epoch the phase goes on while `mi_still_rising` on the validation split, then training is
    the plain VAE's. The loop is train.py's `aggressive_encoder_updates`."""

    max_inner: int = 100
    aggressive = True

    @classmethod
    def from_config(cls, cfg) -> "Aggressive":
        return cls(warmup_epochs=cfg.warmup_epochs, beta_start=cfg.beta_start, max_inner=cfg.aggressive_steps)


REGISTRY = {"elbo": Elbo, "kl-anneal": Elbo, "cyclical": Cyclical, "free-bits": FreeBits, "beta": BetaVAE,
            "bn-vae": Elbo, "aggressive": Aggressive}


def build(cfg) -> Elbo:
    """The objective of a RunConfig (cfg.objective, one of config.OBJECTIVES = the keys of REGISTRY)."""
    return REGISTRY[cfg.objective].from_config(cfg)


def bn_vae_kl_bound(gamma: float, shift: Tensor, batch_var: Tensor, eps: float) -> float:
    """The lower bound on the batch-mean KL of BN-VAE's posteriors (training mode, batch statistics):

        mean_b KL_b >= 1/2 sum_d mean_b mu_bd^2 = 1/2 sum_d (gamma^2 v_d / (v_d + eps) + beta_d^2)
                    >= D gamma^2 / 2 * min_d v_d / (v_d + eps)  (~ D gamma^2 / 2)

    since exp(lv) - 1 - lv >= 0, and the normalized means of dimension d have batch mean beta_d (the shift) and
    batch variance gamma^2 v_d / (v_d + eps), v_d the biased batch variance of the raw means. Equality holds when
    every posterior variance is 1 (logvar = 0)."""
    ratio = batch_var / (batch_var + eps)
    return (0.5 * (gamma ** 2 * ratio + shift.detach().pow(2)).sum()).item()

