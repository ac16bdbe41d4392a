"""The VAE: an encoder q(z|x), a decoder p(x|z), the prior N(0, I), and optionally SVI refinement (SA-VAE).

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)),    z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)
    loss    = mean over the batch of  rec + beta * kl,     rec = -log p(x|z) (one z), kl in closed form

both summed over pixels/tokens and latent dimensions. SA models refine (mu, logvar) by SVI before the ELBO
and back-propagate through the refinement in training. `mu_norm` (BN-VAE, models/bnvae.py) transforms the
encoder's means before anything else sees them; the decoder, and so the skip wiring, is the same either way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from skipvae.errors import DataError
from skipvae.models.pixelcnn import IMAGE_SIZE
from skipvae.models.savae import svi_refine


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) from the global torch RNG."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def kl_to_prior(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) = 1/2 sum_d (mu^2 + exp(logvar) - 1 - logvar), per example [B]."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


class VAE(nn.Module):
    """A VAE (or SA-VAE when `svi_steps` > 0) over images [B, 1, 28, 28] in {0, 1} or token ids [B, T].

    `encoder(x) -> (mu, logvar)`; `decoder.log_likelihood(x, z) -> [B]`.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, *, text: bool = False,
                 vocab_size: int | None = None, skip: bool = False, svi_steps: int = 0, svi_lr: float = 1.0,
                 svi_momentum: float = 0.5, svi_clip: float = 5.0, mu_norm: nn.Module | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        if mu_norm is not None:  # registered only when given: the other models' state dicts are unchanged
            self.mu_norm = mu_norm
        self.latent_dim, self.text, self.vocab_size, self.skip = latent_dim, text, vocab_size, skip
        self.svi_steps, self.svi_lr, self.svi_momentum, self.svi_clip = svi_steps, svi_lr, svi_momentum, svi_clip

    @property
    def semi_amortized(self) -> bool:
        return self.svi_steps > 0

    # --- the shared interface -------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z|x), each [B, D] (mu batch-normalized for BN-VAE)."""
        self.check_input(x)
        mu, logvar = self.encoder(x)
        if hasattr(self, "mu_norm"):
            mu = self.mu_norm(mu)
        return mu, logvar

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) [B]: summed over pixels (Bernoulli), or over the target tokens (words and </s>)."""
        self.check_input(x)
        self.check_latent("z", z, x.shape[0])
        return self.decoder.log_likelihood(x, z)

    def refine(self, x: Tensor, mu: Tensor, logvar: Tensor, create_graph: bool = False,
               beta: float = 1.0) -> tuple[Tensor, Tensor]:
        """SVI-refined (mu, logvar) for SA models (see savae.py); other models return their inputs unchanged.

        create_graph=True (training) keeps the steps differentiable; False (evaluation) returns detached values.
        """
        self.check_input(x)
        self.check_latent("mu", mu, x.shape[0])
        self.check_latent("logvar", logvar, x.shape[0])
        if not self.semi_amortized:
            return mu, logvar
        return self._refine(x, mu, logvar, create_graph, beta)

    def forward(self, x: Tensor, beta: float = 1.0) -> dict[str, Tensor]:
        """'loss' = mean(rec + beta * kl); 'rec' [B] = -log p(x|z), 'kl' [B]; 'mu', 'logvar' of the q used."""
        mu, logvar = self.encode(x)
        if self.semi_amortized:
            mu, logvar = self._refine(x, mu, logvar, create_graph=self.training and torch.is_grad_enabled(),
                                      beta=beta)
        rec = -self.decoder.log_likelihood(x, reparameterize(mu, logvar))
        kl = kl_to_prior(mu, logvar)
        return {"loss": (rec + beta * kl).mean(), "rec": rec, "kl": kl, "mu": mu, "logvar": logvar}

    # --- internals ------------------------------------------------------------------------------------------
    def _refine(self, x: Tensor, mu: Tensor, logvar: Tensor, create_graph: bool, beta: float):
        def neg_elbo(m: Tensor, lv: Tensor) -> Tensor:  # batch mean, as the official SVI objective
            return (-self.decoder.log_likelihood(x, reparameterize(m, lv)) + beta * kl_to_prior(m, lv)).mean()

        return svi_refine(neg_elbo, mu, logvar, self.svi_steps, self.svi_lr, self.svi_momentum, self.svi_clip,
                          create_graph, no_cudnn=self.text and x.is_cuda)

    def check_input(self, x: Tensor) -> None:
        """DataError unless x is an image batch [B, 1, 28, 28] in [0, 1] or a token batch [B, T] of valid ids."""
        if not isinstance(x, Tensor):
            raise DataError(f"x must be a torch.Tensor, got {type(x).__name__}.")
        if x.dim() == 0 or x.shape[0] == 0:
            raise DataError(f"x is an empty batch (shape {tuple(x.shape)}); give at least one example.")
        if self.text:
            check_tokens(x, self.vocab_size)
        else:
            check_images(x)

    def check_latent(self, name: str, t: Tensor, batch: int) -> None:
        if not isinstance(t, Tensor) or t.shape != (batch, self.latent_dim) or not t.is_floating_point():
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise DataError(f"{name} must be a float tensor [B, D] = [{batch}, {self.latent_dim}] (x's batch size, "
                            f"the latent dimension), got {got}.")


def check_images(x: Tensor) -> None:
    """Images: float [B, 1, 28, 28] with values in [0, 1] (binarized to {0, 1} for the Bernoulli likelihood)."""
    shape = (1, IMAGE_SIZE, IMAGE_SIZE)
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        raise DataError(f"images must be [B, 1, {IMAGE_SIZE}, {IMAGE_SIZE}], got {tuple(x.shape)}; add the channel "
                        f"dimension with x.unsqueeze(1) or resize to {IMAGE_SIZE}x{IMAGE_SIZE}.")
    if not x.is_floating_point():
        raise DataError(f"images must be a float tensor, got {x.dtype}; convert with x.float().")
    lo, hi = torch.aminmax(x.detach())
    if not (0 <= lo and hi <= 1):  # also true for NaN
        raise DataError(f"image values must lie in [0, 1] (binarized: 0 or 1), got min {lo.item():.3g}, "
                        f"max {hi.item():.3g}; scale to [0, 1] and binarize, and check for NaN.")


def check_tokens(x: Tensor, vocab_size: int) -> None:
    """Text: int64 ids [B, T], T >= 2, ids in [0, vocab_size), each row with at least one target (x[:, 1:] != pad)."""
    if x.dim() != 2 or x.dtype != torch.long:
        raise DataError(f"a text batch must be a LongTensor [B, T] of token ids, got {x.dtype} {tuple(x.shape)}.")
    if x.shape[1] < 2:
        raise DataError(f"a text batch needs T >= 2 (<s> ... </s>), got T = {x.shape[1]}.")
    lo, hi = torch.aminmax(x)
    if lo < 0 or hi >= vocab_size:
        raise DataError(f"token ids must be in [0, {vocab_size}) (the model's vocabulary), got min {lo.item()}, "
                        f"max {hi.item()}; build the model with the data's vocabulary size.")
    if not bool((x[:, 1:] != 0).any(1).all()):
        raise DataError("every sentence needs at least one target token after <s> (a word or </s>); "
                        "found a row of only <s> and padding.")
