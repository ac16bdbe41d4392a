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

Speed (same function as the official code): all tensors are channels-last (NHWC), the causal crops are done
with the convolutions' own padding plus one zero-row (zero-column) pad, and the z-maps of all layers come from
one matrix product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGE_SIZE = 28
CHANNELS_LAST = torch.channels_last


class GatedActivation(torch.autograd.Function):
    """tanh(a) * sigmoid(b) for the channel halves (a, b) of x, then z_map appended as one more channel.

    The same function as `torch.tanh(a) * torch.sigmoid(b)` (and a concatenation), with a hand-written backward
    that writes both halves of the gradient in place instead of concatenating them afterwards:
        d/da = g s (1 - t^2),  d/db = g t s (1 - s),  t = tanh(a), s = sigmoid(b).
    """

    @staticmethod
    def forward(ctx, x: Tensor, z_map: Tensor | None = None) -> Tensor:
        C = x.shape[1] // 2
        t, s = torch.tanh(x[:, :C]), torch.sigmoid(x[:, C:])
        ctx.save_for_backward(t, s)
        ctx.with_map = z_map is not None
        if z_map is None:
            return t * s
        out = x.new_empty((x.shape[0], C + 1) + x.shape[2:]).contiguous(memory_format=CHANNELS_LAST)
        torch.mul(t, s, out=out[:, :C])
        out[:, C:] = z_map
        return out

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, Tensor | None]:
        t, s = ctx.saved_tensors
        C = t.shape[1]
        g_map = g[:, C:] if ctx.with_map else None
        g = g[:, :C]
        gx = t.new_empty((t.shape[0], 2 * C) + t.shape[2:]).contiguous(memory_format=CHANNELS_LAST)
        ga, gb = gx[:, :C], gx[:, C:]
        gs = g * s
        torch.mul(gs, t, out=gb)  # g t s
        torch.addcmul(gs, gs, t.square(), value=-1.0, out=ga)  # g s (1 - t^2)
        gb.addcmul_(gb, s, value=-1.0)  # g t s (1 - s)
        return gx, g_map


def gate(x: Tensor, z_map: Tensor | None = None) -> Tensor:
    """Gated activation tanh(a) * sigmoid(b) of the channel halves of x [B, 2C, H, W] (+ z_map as channel C)."""
    return GatedActivation.apply(x, z_map)


def shift_down(x: Tensor, height: int) -> Tensor:
    """Rows 0..height-2 of x moved one row down under a row of zeros: [B, C, >= height-1, W] -> [B, C, height, W].

    One pad with a negative bottom pad: the crop and the shift in one copy (and one in backward).
    """
    return F.pad(x, (0, 0, 1, height - 1 - x.shape[2]))


def shift_right(x: Tensor, width: int, by: int) -> Tensor:
    """Columns 0..width-1-by of x moved `by` columns right, zeros on the left: [.., >= width-by] -> [.., width]."""
    return F.pad(x, (by, width - by - x.shape[3]))


class GatedMaskedConv2d(nn.Module):
    """One gated PixelCNN layer: (v, h) [B, C_in, H, W] -> (v', h') [B, C, H, W]; mask A if `first`."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, first: bool):
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        p = kernel_size // 2
        self.channels, self.pad, self.first = channels, p, first
        # Vertical: (p+1) x k window over rows r-p..r; evaluated at row r-1 by shift_down.
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (p + 1, kernel_size), padding=(p, p))
        self.vh_conv = nn.Conv2d(2 * channels, 2 * channels, 1)  # vertical -> horizontal link
        # Horizontal: 1 x (p+1) window over columns c-p..c (mask B); shifted right by one for mask A.
        self.h_conv = nn.Conv2d(in_channels, 2 * channels, (1, p + 1), padding=(0, p))
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.h_res = None if first else nn.Conv2d(in_channels, channels, 1)  # residual (mask B layers)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        H, W = v.shape[-2:]
        v_out = shift_down(self.v_conv(v), H)  # row r: input rows r-1-p .. r-1; row 0: zeros
        h_pre = shift_right(self.h_conv(h), W, by=1 if self.first else 0)  # columns c-p .. c (-1 for mask A)
        h_pre = h_pre + self.vh_conv(v_out)
        h_new = self.h_out(gate(h_pre))
        if self.h_res is not None:
            h_new = h_new + self.h_res(h)
        return gate(v_out), h_new


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
            if i > 0 and self.skip:
                v, h = with_map(v, maps[i]), with_map(h, maps[i])
            v, h = layer(v, h)
        if self.skip:
            h = with_map(h, maps[-1])
        return self.out_conv(h)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = sum over pixels of x log sigmoid(l) + (1 - x) log sigmoid(-l), per example [B]."""
        logits = self.logits(x, z)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def with_map(x: Tensor, z_map: Tensor) -> Tensor:
    """x [B, C, H, W] with the z-map [B, 1, H, W] appended as its last channel, in channels-last layout."""
    return torch.cat([x, z_map], dim=1).contiguous(memory_format=CHANNELS_LAST)
