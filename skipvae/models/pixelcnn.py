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

from skipvae.errors import ConfigError

IMAGE_SIZE = 28
CHANNELS_LAST = torch.channels_last


class GatedActivation(torch.autograd.Function):
    """tanh(a) * sigmoid(b) for the channel halves (a, b) of x, then z_map appended as one more channel.

    The same function as `torch.cat([torch.tanh(a) * torch.sigmoid(b), z_map], 1)`, with a hand-written
    backward that writes both halves of the gradient in place instead of concatenating them afterwards:
        d/da = g s (1 - t^2),  d/db = g t s (1 - s),  t = tanh(a), s = sigmoid(b).
    When a gradient of this gradient is needed (backward with create_graph=True, as in SA-VAE training) the
    backward uses differentiable ops on the saved input instead.
    """

    @staticmethod
    def forward(ctx, x: Tensor, z_map: Tensor | None = None) -> Tensor:
        C = x.shape[1] // 2
        t, s = torch.tanh(x[:, :C]), torch.sigmoid(x[:, C:])
        ctx.save_for_backward(x, t, s)
        ctx.with_map = z_map is not None
        if z_map is None:
            return t * s
        out = x.new_empty((x.shape[0], C + 1) + x.shape[2:]).contiguous(memory_format=CHANNELS_LAST)
        torch.mul(t, s, out=out[:, :C])
        out[:, C:] = z_map
        return out

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, Tensor | None]:
        x, t, s = ctx.saved_tensors
        C = t.shape[1]
        g_map = g[:, C:] if ctx.with_map else None
        g = g[:, :C]
        if torch.is_grad_enabled():  # double backward: recompute t and s as functions of x
            t, s = torch.tanh(x[:, :C]), torch.sigmoid(x[:, C:])
            gs = g * s
            return torch.cat([gs * (1 - t * t), gs * t * (1 - s)], 1), g_map
        gx = torch.empty_like(x, memory_format=CHANNELS_LAST)
        ga, gb = gx[:, :C], gx[:, C:]
        gs = g * s
        torch.mul(gs, t, out=gb)  # g t s
        torch.addcmul(gs, gb, t, value=-1.0, out=ga)  # g s (1 - t^2)
        gb.addcmul_(gb, s, value=-1.0)  # g t s (1 - s)
        return gx, g_map


def gate(x: Tensor, z_map: Tensor | None = None) -> Tensor:
    """Gated activation tanh(a) * sigmoid(b) of the channel halves of x [B, 2C, H, W] (+ z_map as channel C)."""
    return GatedActivation.apply(x, z_map)


class Pad2d(torch.autograd.Function):
    """x [B, C, H, W] padded with zeros (or cropped, for negative amounts) by (left, right, top, bottom).

    The same function as `F.pad(x, (left, right, top, bottom))`, which first fills the whole output with zeros;
    this one writes the zeros around the copied block only. Its gradient is the opposite pad.
    """

    @staticmethod
    def forward(ctx, x: Tensor, left: int, right: int, top: int, bottom: int) -> Tensor:
        ctx.pads = (left, right, top, bottom)
        B, C, H, W = x.shape
        Ho, Wo = H + top + bottom, W + left + right
        fmt = CHANNELS_LAST if x.is_contiguous(memory_format=CHANNELS_LAST) else torch.contiguous_format
        out = torch.empty((B, C, Ho, Wo), dtype=x.dtype, device=x.device, memory_format=fmt)
        r0, c0 = max(top, 0), max(left, 0)  # where the copied block starts in out ...
        i0, j0 = max(-top, 0), max(-left, 0)  # ... and in x
        nr, nc = min(H - i0, Ho - r0), min(W - j0, Wo - c0)
        out[:, :, :r0].zero_()
        out[:, :, r0 + nr:].zero_()
        out[:, :, r0:r0 + nr, :c0].zero_()
        out[:, :, r0:r0 + nr, c0 + nc:].zero_()
        out[:, :, r0:r0 + nr, c0:c0 + nc] = x[:, :, i0:i0 + nr, j0:j0 + nc]
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        left, right, top, bottom = ctx.pads
        return Pad2d.apply(g, -left, -right, -top, -bottom), None, None, None, None


def pad2d(x: Tensor, left: int = 0, right: int = 0, top: int = 0, bottom: int = 0) -> Tensor:
    """Zero-pad (or crop, for negative amounts) the last two dimensions of x [B, C, H, W]."""
    return Pad2d.apply(x, left, right, top, bottom)


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
        v_out = shift_down(self.v_conv(v), H)  # row r: input rows r-1-p .. r-1; row 0: zeros
        h_pre = self.h_conv(pad2d(h, left=self.pad))  # column c: input columns c-p .. c
        if self.first:
            h_pre = shift_right(h_pre, W)  # mask A: columns c-1-p .. c-1; column 0: zeros
        h_pre = h_pre.add_(self.vh_conv(v_out))  # in place: nothing saved h_pre for backward
        h_new = self.h_out(gate(h_pre))
        if self.h_res is not None:
            h_new = h_new.add_(self.h_res(h))
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
        return self.out_conv(h)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = sum over pixels of x log sigmoid(l) + (1 - x) log sigmoid(-l), per example [B]."""
        logits = self.logits(x, z)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def with_map(x: Tensor, z_map: Tensor) -> Tensor:
    """x [B, C, H, W] with the z-map [B, 1, H, W] appended as its last channel, in channels-last layout."""
    return torch.cat([x, z_map], dim=1).contiguous(memory_format=CHANNELS_LAST)
