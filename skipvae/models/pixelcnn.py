"""Gated PixelCNN decoder p(x|z) for 28x28 binary images, with or without generative skip connections.

One layer (van den Oord et al. 2016, as wired in the official `yoonkim/skip-vae` code, `models_img_skip.py`):

    v_out = shift_down(conv_{(p+1) x k}(v))                    vertical stack: rows strictly above
    v'    = tanh(v_out[:C]) * sigmoid(v_out[C:])
    h_pre = conv_{1 x (p+1)}(h)  [shifted right by 1 in layer 0]  +  conv_1x1(v_out)
    h'    = conv_1x1(tanh(h_pre[:C]) * sigmoid(h_pre[C:]))  [+ conv_1x1(h) from layer 1 on]

with p = k // 2. `shift_down` puts a row of zeros on top and drops the last row, so row r of the vertical stack
sees input rows r-1-p .. r-1 only. The horizontal stack of layer 0 (mask A) sees the p+1 pixels left of the
current one; later layers (mask B) also see the current position, whose value there only carries
information about earlier pixels. So logit i depends on pixels j < i (raster order) only.

z enters as 1x28x28 maps, Linear(latent, 784) each, concatenated as an extra channel to both stack inputs:
of layer 0 only (VAE), or of every layer plus the last feature map before the 1x1 output conv (Skip-VAE).
The z-maps do not depend on x, so they may be seen at every position.

Speed (the same function as the official code, checked against a plain re-statement of it in the tests): all
tensors are channels-last (NHWC), the causal shifts are the convolutions' own padding plus one pad2d that
crops and shifts in one copy, the gates are one autograd function that also appends the next z-map, the
z-maps of all layers come from one matrix product, and the last layer skips its unused vertical output
(see ops.py). The convolutions have a hand-written second derivative for SA-VAE training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skipvae.errors import ConfigError
from skipvae.models.ops import CHANNELS_LAST, conv2d, gate, pad2d, upcast

IMAGE_SIZE = 28


def shift_down(x: Tensor, height: int) -> Tensor:
    """Rows 0..height-2 of x moved one row down under a row of zeros: [B, C, >= height-1, W] -> [B, C, height, W]."""
    return pad2d(x, top=1, bottom=height - 1 - x.shape[2])


def shift_right(x: Tensor, width: int) -> Tensor:
    """Columns 0..width-2 of x moved one column right, zeros on the left: [.., >= width-1] -> [.., width]."""
    return pad2d(x, left=1, right=width - 1 - x.shape[3])


class GatedMaskedConv2d(nn.Module):
    """One gated PixelCNN layer: (v, h) [B, C_in, H, W] -> (v', h') [B, C, H, W]; mask A if `first`."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, first: bool):
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ConfigError(f"PixelCNN kernel sizes must be odd and >= 3, got {kernel_size}.")
        p = kernel_size // 2
        self.channels, self.pad, self.first = channels, p, first
        # Vertical: (p+1) x k window over rows r-p..r; evaluated at row r-1 by shift_down.
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (p + 1, kernel_size), padding=(p, p))
        self.vh_conv = nn.Conv2d(2 * channels, 2 * channels, 1)  # vertical -> horizontal link
        # Horizontal: 1 x (p+1) window over columns c-p..c (mask B); shifted right by one for mask A.
        self.h_conv = nn.Conv2d(in_channels, 2 * channels, (1, p + 1))
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.h_res = None if first else nn.Conv2d(in_channels, channels, 1)  # residual (mask B layers)

    def forward(self, v: Tensor, h: Tensor, z_map: Tensor | None = None,
                last: bool = False) -> tuple[Tensor | None, Tensor]:
        """(v', h') from (v, h); z_map [B, 1, H, W] is appended to v'; `last`: v' is not needed (None)."""
        H, W = v.shape[-2:]
        v_out = shift_down(conv2d(v, self.v_conv), H)  # row r: input rows r-1-p .. r-1; row 0: zeros
        h_pre = conv2d(pad2d(h, left=self.pad), self.h_conv)  # column c: input columns c-p .. c
        if self.first:
            h_pre = shift_right(h_pre, W)  # mask A: columns c-1-p .. c-1; column 0: zeros
        h_pre = h_pre.add_(conv2d(v_out, self.vh_conv))  # in place: nothing saved h_pre for backward
        h_new = conv2d(gate(h_pre), self.h_out)
        if self.h_res is not None:
            h_new = h_new.add_(conv2d(h, self.h_res))
        return (None if last else gate(v_out, z_map)), h_new


class PixelCNNDecoder(nn.Module):
    """Gated PixelCNN p(x|z): `logits(x, z)` [B, 1, 28, 28], `log_likelihood(x, z)` [B] (Bernoulli)."""

    def __init__(self, latent_dim: int, channels: int, kernels: list[int], skip: bool):
        super().__init__()
        self.skip, self.n_layers = skip, len(kernels)
        self.n_maps = len(kernels) + 1 if skip else 1
        # Row block i of the weight is layer i's Linear(latent, 784); with skips the last one feeds the output conv.
        self.z_maps = nn.Linear(latent_dim, self.n_maps * IMAGE_SIZE * IMAGE_SIZE)
        extra = 1 if skip else 0
        self.layers = nn.ModuleList(
            GatedMaskedConv2d(2 if i == 0 else channels + extra, channels, k, first=(i == 0))
            for i, k in enumerate(kernels))
        self.out_conv = nn.Conv2d(channels + extra, 1, 1)
        self.to(memory_format=CHANNELS_LAST)

    def z_map_weights(self) -> list[Tensor]:
        """The weight [784, latent] of each z-map Linear, in the order the maps are used."""
        return list(self.z_maps.weight.split(IMAGE_SIZE * IMAGE_SIZE, dim=0))

    def logits(self, x: Tensor, z: Tensor) -> Tensor:
        """Bernoulli logits [B, 1, 28, 28] of every pixel given the pixels before it and z."""
        B = x.shape[0]
        maps = self.z_maps(z).view(B, self.n_maps, IMAGE_SIZE, IMAGE_SIZE).split(1, dim=1)
        v = h = with_map(x, maps[0])
        for i, layer in enumerate(self.layers):
            next_map = maps[i + 1] if self.skip else None  # with skips, z enters every layer's input
            last = i + 1 == self.n_layers
            v, h = layer(v, h, z_map=None if last else next_map, last=last)
            if next_map is not None:
                h = with_map(h, next_map)
        return conv2d(h, self.out_conv)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = sum over pixels of x log sigmoid(l) + (1 - x) log sigmoid(-l), per example [B]."""
        logits = upcast(self.logits(x, z))  # the loss in fp32 under autocast
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def with_map(x: Tensor, z_map: Tensor) -> Tensor:
    """x [B, C, H, W] with the z-map [B, 1, H, W] appended as its last channel, in channels-last layout."""
    return torch.cat([x, z_map], dim=1).contiguous(memory_format=CHANNELS_LAST)
