"""Inference networks q(z|x) = N(mu(x), diag(exp(logvar(x)))): each maps x to (mu, logvar), both [B, D]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skipvae.data.text import PAD_ID
from skipvae.models.ops import CHANNELS_LAST, upcast
from skipvae.models.pixelcnn import IMAGE_SIZE


def heads(code: Tensor, mean: nn.Linear, logvar: nn.Linear) -> tuple[Tensor, Tensor]:
    """(mu, logvar) = (mean(code), logvar(code)) in fp32, also under autocast: the KL and the SVI steps use them."""
    with torch.autocast(code.device.type, enabled=False):
        code = upcast(code)
        return mean(code), logvar(code)


class ResidualBlock(nn.Module):
    """relu(proj(x) + BN(conv3x3(relu(BN(conv3x3(x)))))), proj a 1x1 conv when the channel count changes."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.proj = None if in_channels == channels else nn.Conv2d(in_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.proj is None else self.proj(x)))


class ResNetEncoder(nn.Module):
    """3 x [residual block, 2x2 stride-2 conv] (28 -> 14 -> 7 -> 3), then Linear(3*3*C) -> mu and -> logvar."""

    def __init__(self, latent_dim: int, channels: int = 64, n_blocks: int = 3):
        super().__init__()
        blocks, size, c_in = [], IMAGE_SIZE, 1
        for _ in range(n_blocks):
            blocks += [ResidualBlock(c_in, channels), nn.Conv2d(channels, channels, 2, stride=2)]
            c_in, size = channels, size // 2
        self.cnn = nn.Sequential(*blocks)
        self.mean = nn.Linear(channels * size * size, latent_dim)
        self.logvar = nn.Linear(channels * size * size, latent_dim)
        self.to(memory_format=CHANNELS_LAST)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # Flatten in (C, H, W) order, as a contiguous NCHW tensor would.
        code = self.cnn(x.contiguous(memory_format=CHANNELS_LAST)).contiguous().flatten(1)
        return heads(code, self.mean, self.logvar)


class MLPEncoder(nn.Module):
    """The "weak" encoder: 784 -> hidden -> hidden (ReLU), then Linear -> mu and Linear -> logvar."""

    def __init__(self, latent_dim: int, hidden: int = 1024):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(IMAGE_SIZE * IMAGE_SIZE, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        code = self.mlp(x.flatten(1))
        return heads(code, self.mean, self.logvar)


class LSTMEncoder(nn.Module):
    """Word embeddings -> 1-layer LSTM; the hidden state at each sentence's last token (</s>) -> mu, logvar.

    The official code batches sentences of equal length and reads the state at position -1; with padded
    batches the same state is the one at position length-1 (pads come after </s> and are never read).
    """

    def __init__(self, vocab_size: int, latent_dim: int, emb_dim: int = 512, hidden: int = 1024):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.rnn = nn.LSTM(emb_dim, hidden, batch_first=True)
        self.mean = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        states, _ = self.rnn(self.embedding(x))  # [B, T, H]
        last = (x != PAD_ID).sum(1) - 1  # index of </s>
        code = states[torch.arange(x.shape[0], device=x.device), last]
        return heads(code, self.mean, self.logvar)


class NoLatentEncoder(nn.Module):
    """The language model's "encoder": a posterior over a 0-dimensional z, (mu, logvar) both [B, 0]. With it the
    VAE machinery computes the LM exactly: KL = 0, and log p(x|z) = log p(x) for the one (empty) z."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        empty = torch.zeros(x.shape[0], 0, device=x.device)
        return empty, empty
