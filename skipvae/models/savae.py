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


def clip_by_norm(g: Tensor, max_norm: float) -> Tensor:
    """g * min(1, max_norm / (||g||_2 + 1e-6)), the norm taken over the whole tensor (as the official code)."""
    scale = (max_norm / (g.norm() + 1e-6)).clamp(max=1.0)
    return g * scale


def svi_refine(neg_elbo: Callable[[Tensor, Tensor], Tensor], mu: Tensor, logvar: Tensor, steps: int, lr: float,
               momentum: float, max_norm: float, create_graph: bool) -> tuple[Tensor, Tensor]:
    """(mu_K, logvar_K) after `steps` momentum-SGD steps on neg_elbo(mu, logvar) -> scalar.

    create_graph=True keeps the unrolled steps in the autograd graph (training, end-to-end gradient);
    False detaches every step (evaluation) and returns detached tensors. Works inside torch.no_grad().
    """
    with torch.enable_grad():
        if create_graph:
            if not mu.requires_grad:
                mu = mu.detach().requires_grad_(True)
            if not logvar.requires_grad:
                logvar = logvar.detach().requires_grad_(True)
        else:
            mu, logvar = mu.detach().requires_grad_(True), logvar.detach().requires_grad_(True)
        vel_mu = vel_logvar = None
        for _ in range(steps):
            g_mu, g_logvar = torch.autograd.grad(neg_elbo(mu, logvar), (mu, logvar), create_graph=create_graph)
            if max_norm > 0:
                g_mu, g_logvar = clip_by_norm(g_mu, max_norm), clip_by_norm(g_logvar, max_norm)
            vel_mu = -g_mu if vel_mu is None else momentum * vel_mu - g_mu
            vel_logvar = -g_logvar if vel_logvar is None else momentum * vel_logvar - g_logvar
            mu, logvar = mu + lr * vel_mu, logvar + lr * vel_logvar
            if not create_graph:
                mu, logvar = mu.detach().requires_grad_(True), logvar.detach().requires_grad_(True)
                vel_mu, vel_logvar = vel_mu.detach(), vel_logvar.detach()
    if not create_graph:
        return mu.detach(), logvar.detach()
    return mu, logvar


def no_cudnn_if(flag: bool):
    """cuDNN's RNN has no double backward: switch it off while the SVI steps are recorded for one."""
    return torch.backends.cudnn.flags(enabled=False) if flag else contextlib.nullcontext()
