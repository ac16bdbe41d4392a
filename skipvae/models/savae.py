"""Semi-amortized inference (Kim et al. 2018): K steps of SVI on (mu, logvar), starting from the encoder.

Following the official `OptimN2N` (`harvardnlp/sa-vae`, `optim_n2n.py`) as driven by `train_img.py` /
`train_text.py`: with f = the batch mean of the negative ELBO, rec + beta * kl, one reparameterized z per step,

    g_k = clip(grad_{lambda_k} f(lambda_k)),   clip(g) = g * min(1, c / (||g|| + 1e-6)), ||g|| over the whole batch
    m_k = momentum * m_{k-1} - g_k              (m_0 = -g_0)
    lambda_{k+1} = lambda_k + lr * m_k

for lambda = mu and lambda = logvar separately (the same lr for both). The official code back-propagates
through these K steps with finite-difference Hessian-vector products; here the steps are recorded by autograd
(`create_graph=True`) so the gradient of the final ELBO reaches the encoder and the decoder exactly.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def clip_by_norm(g: Tensor, max_norm: float) -> Tensor:
    """g * min(1, max_norm / (||g||_2 + 1e-6)), the norm taken over the whole tensor (as the official code)."""
    scale = (max_norm / (g.norm() + 1e-6)).clamp(max=1.0)
    return g * scale


def svi_refine(neg_elbo: Callable[[Tensor, Tensor], Tensor], mu: Tensor, logvar: Tensor, steps: int, lr: float,
               momentum: float, max_norm: float, create_graph: bool,
               no_cudnn: bool = False) -> tuple[Tensor, Tensor]:
    """(mu_K, logvar_K) after `steps` momentum-SGD steps on neg_elbo(mu, logvar) -> scalar.

    create_graph=True keeps the unrolled steps differentiable (training: end-to-end gradient, exact second
    derivatives). Each step is checkpointed: backward recomputes it, with the same random draws, instead of
    storing K graphs, so memory does not grow with K. create_graph=False (evaluation) returns detached
    tensors. Works inside torch.no_grad(). no_cudnn: run the steps (and their recomputation) without cuDNN,
    whose RNN kernels have no second derivative and no backward in eval mode.
    """

    def step(mu: Tensor, logvar: Tensor, vel_mu: Tensor, vel_logvar: Tensor) -> tuple[Tensor, ...]:
        g_mu, g_logvar = torch.autograd.grad(neg_elbo(mu, logvar), (mu, logvar), create_graph=create_graph)
        if max_norm > 0:
            g_mu, g_logvar = clip_by_norm(g_mu, max_norm), clip_by_norm(g_logvar, max_norm)
        vel_mu, vel_logvar = momentum * vel_mu - g_mu, momentum * vel_logvar - g_logvar
        return mu + lr * vel_mu, logvar + lr * vel_logvar, vel_mu, vel_logvar

    with torch.enable_grad(), no_cudnn_if(no_cudnn):
        if not create_graph or not mu.requires_grad:
            mu = mu.detach().requires_grad_(True)
        if not create_graph or not logvar.requires_grad:
            logvar = logvar.detach().requires_grad_(True)
        vel_mu, vel_logvar = torch.zeros_like(mu), torch.zeros_like(logvar)  # so that m_0 = -g_0
        for _ in range(steps):
            if create_graph:
                mu, logvar, vel_mu, vel_logvar = checkpoint(
                    step, mu, logvar, vel_mu, vel_logvar, use_reentrant=False,
                    context_fn=lambda: (no_cudnn_if(no_cudnn), no_cudnn_if(no_cudnn)))
            else:
                mu, logvar, vel_mu, vel_logvar = (t.detach() for t in step(mu, logvar, vel_mu, vel_logvar))
                mu, logvar = mu.requires_grad_(True), logvar.requires_grad_(True)
    if not create_graph:
        return mu.detach(), logvar.detach()
    return mu, logvar


def no_cudnn_if(flag: bool):
    """torch.backends.cudnn switched off if `flag` (a fresh context manager per call)."""
    return torch.backends.cudnn.flags(enabled=False) if flag else contextlib.nullcontext()
