"""BN-VAE (Zhu et al., ACL 2020): the posterior means batch-normalized with a fixed scale gamma and a learned shift.

    mu_bd = gamma (m_bd - mean_b m_bd) / sqrt(var_b m_bd + eps) + beta_d      (training: batch statistics)

m the encoder's raw means, gamma fixed (0.6 in the paper's Yahoo row), beta learned (initialized at 0). Every
dimension's means then have batch mean beta_d and batch variance ~ gamma^2, which bounds the batch-mean KL below
by D gamma^2 / 2 (skipvae.objectives.bn_vae_kl_bound): the posterior cannot collapse to the prior. In evaluation
the running statistics are used, as nn.BatchNorm1d does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skipvae.models.ops import upcast


class MeanBatchNorm(nn.Module):
    """Batch normalization of mu [B, D] with the fixed scale `gamma` (a buffer, never trained) and a learned shift."""

    def __init__(self, latent_dim: int, gamma: float = 0.6, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("gamma", torch.full((latent_dim,), float(gamma)))
        self.shift = nn.Parameter(torch.zeros(latent_dim))
        self.register_buffer("running_mean", torch.zeros(latent_dim))
        self.register_buffer("running_var", torch.ones(latent_dim))

    def reset_parameters(self) -> None:
        """The shift back to 0 (after a whole-model initialisation such as uniform_init)."""
        with torch.no_grad():
            self.shift.zero_()

    def forward(self, mu: Tensor) -> Tensor:
        batch_stats = self.training and mu.shape[0] > 1  # one example has no batch variance: use the running ones
        return F.batch_norm(upcast(mu), self.running_mean, self.running_var, self.gamma, self.shift,
                            training=batch_stats, momentum=self.momentum, eps=self.eps)
