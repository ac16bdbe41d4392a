"""The "weak" MLP decoder p(x|z) for 28x28 binary images, with or without generative skip connections.

    h_0 = W_0 z + b_0
    h_l = relu(W_l h_{l-1} + b_l  [+ U_l z + c_l with skips]),   l = 1..L
    logits = W_out h_L + b_out

As in the official `MLPVAE` (`yoonkim/skip-vae`, `models_img_skip.py`): there is no nonlinearity between the
first Linear(z) and the first hidden layer, z enters the L hidden layers through their own Linear(z) with
skips, and the output layer sees h_L only.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from skipvae.models.ops import upcast
from skipvae.models.pixelcnn import IMAGE_SIZE


class MLPDecoder(nn.Module):
    """MLP p(x|z): `logits(x, z)` [B, 1, 28, 28], `log_likelihood(x, z)` [B] (Bernoulli)."""

    def __init__(self, latent_dim: int, hidden: int = 1024, n_layers: int = 2, skip: bool = False):
        super().__init__()
        self.skip = skip
        self.z_in = nn.Linear(latent_dim, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_layers))
        self.z_skips = nn.ModuleList(nn.Linear(latent_dim, hidden) for _ in range(n_layers)) if skip else None
        self.out = nn.Linear(hidden, IMAGE_SIZE * IMAGE_SIZE)

    def logits(self, x: Tensor, z: Tensor) -> Tensor:
        """Bernoulli logits [B, 1, 28, 28] given z (x gives only the shape: pixels are independent given z)."""
        h = self.z_in(z)
        for i, layer in enumerate(self.hidden):
            pre = layer(h)
            if self.skip:
                pre = pre + self.z_skips[i](z)
            h = F.relu(pre)
        return self.out(h).view(x.shape[0], 1, IMAGE_SIZE, IMAGE_SIZE)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) summed over the 784 pixels, per example [B]."""
        logits = upcast(self.logits(x, z))  # the loss in fp32 under autocast
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
