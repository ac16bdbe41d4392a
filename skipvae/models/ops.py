"""Autograd operations of the PixelCNN that compute the same functions as their PyTorch counterparts with less
memory traffic, or with a cheaper second derivative (needed by SA-VAE training).

    gate(x, z_map)   tanh(a) * sigmoid(b) of the channel halves of x, z_map appended as one more channel;
                     first and second derivatives written by hand (GateBackward)
    pad2d(x, ...)    F.pad for [B, C, H, W] (negative amounts crop), zeros written only where needed
    conv2d(x, conv)  F.conv2d with conv's parameters, and a second derivative made of convolutions and
                     convolution_backward calls instead of PyTorch's generic (and on CPU very slow) one

Mixed precision: under torch.autocast (CPU or CUDA, bf16) conv2d casts x, W, b to the autocast dtype before
the autograd function, as F.conv2d would, with differentiable casts (second derivatives reach the fp32
parameters). Every backward casts its incoming gradients to the dtype of its saved tensors, so one node
computes in one dtype (oneDNN has no mixed-dtype convolution); autograd casts the gradients it returns to each
input's dtype. Outside autocast every cast is the identity: the fp32 path is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

CHANNELS_LAST = torch.channels_last


def autocast_dtype(t: Tensor) -> torch.dtype | None:
    """The dtype that autocast gives matrix products on t's device, or None when autocast is off there."""
    kind = t.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


def upcast(t: Tensor) -> Tensor:
    """t in fp32 if it is a 16-bit float (autocast's output), else t itself (fp32 and fp64 stay as they are)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def sigmoid(b: Tensor) -> Tensor:
    """torch.sigmoid(b). A 16-bit channel slice is first copied to a dense channels-last tensor: PyTorch's CPU bf16
    sigmoid is several times slower on the strided slice than copy + sigmoid (the bf16 PixelCNN step gains 7-9%,
    benchmarks/bench_models.py --profile). fp32 is computed as before."""
    if b.dtype in (torch.bfloat16, torch.float16) and not b.is_contiguous(memory_format=CHANNELS_LAST):
        b = b.contiguous(memory_format=CHANNELS_LAST)
    return torch.sigmoid(b)


def compiling() -> bool:
    """Whether torch.compile is tracing: there the ops below are the plain PyTorch functions they equal, which
    inductor fuses itself (the hand-written ones write into channel slices with out=, which dynamo cannot trace;
    their hand-written second derivatives serve SA-VAE, which trains eagerly)."""
    return torch.compiler.is_compiling()


def cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """t in `dtype` (t itself when it already is, or None)."""
    return None if t is None else t.to(dtype)


class GatedActivation(torch.autograd.Function):
    """tanh(a) * sigmoid(b) for the channel halves (a, b) of x, then z_map appended as one more channel.

    The same function as `torch.cat([torch.tanh(a) * torch.sigmoid(b), z_map], 1)` without the concatenation;
    its backward is `GateBackward`, itself differentiable (SA-VAE differentiates the gradient).
    """

    @staticmethod
    def forward(ctx, x: Tensor, z_map: Tensor | None = None) -> Tensor:
        C = x.shape[1] // 2
        t, s = torch.tanh(x[:, :C]), sigmoid(x[:, C:])
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
        return GateBackward.apply(cast(g[:, :C], t.dtype), x, t, s), g_map


class GateBackward(torch.autograd.Function):
    """dx = [g s t', g t s'] with t = tanh(a), s = sigmoid(b), t' = 1 - t^2, s' = s (1 - s), written in place.

    Its backward, for the gradient [u, w] of dx (halves a, b), is the exact second derivative:
        d/dg = u s t' + w t s',   d/da = -2 u g s t t' + w g t' s',   d/db = u g t' s' + w g t s' (1 - 2 s).
    """

    @staticmethod
    def forward(ctx, g: Tensor, x: Tensor, t: Tensor, s: Tensor) -> Tensor:
        ctx.save_for_backward(g, t, s)
        C = t.shape[1]
        gx = torch.empty_like(x, memory_format=CHANNELS_LAST)
        ga, gb = gx[:, :C], gx[:, C:]
        gs = g * s
        torch.mul(gs, t, out=gb)  # g t s
        torch.addcmul(gs, gb, t, value=-1.0, out=ga)  # g s (1 - t^2)
        gb.addcmul_(gb, s, value=-1.0)  # g t s (1 - s)
        return gx

    @staticmethod
    @once_differentiable
    def backward(ctx, ggx: Tensor):
        g, t, s = ctx.saved_tensors
        C = t.shape[1]
        ggx = cast(ggx, t.dtype)
        u, w = ggx[:, :C], ggx[:, C:]
        t1, s1 = 1 - t * t, s * (1 - s)  # tanh' and sigmoid'
        gts = g * t1 * s1
        d_g = u * s * t1 + w * t * s1
        d_x = torch.empty_like(ggx, memory_format=CHANNELS_LAST)
        d_x[:, :C] = w * gts - 2 * u * g * s * t * t1
        d_x[:, C:] = u * gts + w * g * t * s1 * (1 - 2 * s)
        return d_g, d_x, None, None


def gate(x: Tensor, z_map: Tensor | None = None) -> Tensor:
    """Gated activation tanh(a) * sigmoid(b) of the channel halves of x [B, 2C, H, W] (+ z_map as channel C)."""
    if compiling():  # the plain ops, which inductor fuses, forward and backward
        a, b = x.chunk(2, dim=1)
        out = torch.tanh(a) * torch.sigmoid(b)
        return out if z_map is None else torch.cat([out, z_map.to(out.dtype)], 1)
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
    if compiling():
        return F.pad(x, (left, right, top, bottom))
    return Pad2d.apply(x, left, right, top, bottom)


class Conv2d(torch.autograd.Function):
    """y = conv2d(x, weight) + bias (stride 1). Backward: ConvBackward, itself differentiable."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, weight = ctx.saved_tensors
        need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2] and ctx.has_bias)
        gx, gw, gb = ConvBackward.apply(cast(g, x.dtype), x, weight, ctx.padding, need)
        return gx, gw, gb, None


class ConvBackward(torch.autograd.Function):
    """(dx, dW, db) = convolution_backward(g, x, W). Its own backward, for grads (ggx, ggW, ggb) of those:
        d/dg = conv2d(ggx, W) + conv2d(x, ggW) + ggb,   d/dx = dx-of-conv(g; weight ggW),
        d/dW = dW-of-conv(g; input ggx)."""

    @staticmethod
    def forward(ctx, g: Tensor, x: Tensor, weight: Tensor, padding: tuple[int, int], need: tuple[bool, bool, bool]):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(g, x, weight)
        ctx.padding = padding
        return _conv_backward(g, x, weight, padding, need)

    @staticmethod
    @once_differentiable
    def backward(ctx, ggx: Tensor | None, ggw: Tensor | None, ggb: Tensor | None):
        g, x, weight = ctx.saved_tensors
        p = ctx.padding
        need_g, need_x, need_w = ctx.needs_input_grad[:3]
        ggx, ggw, ggb = cast(ggx, x.dtype), cast(ggw, x.dtype), cast(ggb, x.dtype)
        d_g = d_x = d_w = None
        if need_g:
            terms = []
            if ggx is not None:
                terms.append(F.conv2d(ggx, weight, None, padding=p))
            if ggw is not None:
                terms.append(F.conv2d(x, ggw, None, padding=p))
            if ggb is not None:
                terms.append(ggb.view(1, -1, 1, 1).expand_as(g))
            d_g = sum(terms[1:], terms[0]) if terms else None
        if need_x and ggw is not None:
            d_x = _conv_backward(g, x, ggw, p, (True, False, False))[0]
        if need_w and ggx is not None:
            d_w = _conv_backward(g, ggx, weight, p, (False, True, False))[1]
        return d_g, d_x, d_w, None, None


def _conv_backward(g: Tensor, x: Tensor, weight: Tensor, padding, need) -> tuple:
    return torch.ops.aten.convolution_backward(g, x, weight, [weight.shape[0]] if need[2] else None, (1, 1),
                                               padding, (1, 1), False, (0, 0), 1, need)


def conv2d(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """conv(x) (stride 1, no dilation or groups), differentiable twice at the cost of a few convolutions.

    Under autocast x, W and b are cast to its dtype first, by differentiable casts (so that second derivatives
    still reach the fp32 parameters), as F.conv2d would do.
    """
    weight, bias = conv.weight, conv.bias
    dtype = autocast_dtype(x)
    if dtype is not None:
        x, weight, bias = cast(x, dtype), cast(weight, dtype), cast(bias, dtype)
    if compiling():
        return F.conv2d(x, weight, bias, padding=conv.padding)
    return Conv2d.apply(x, weight, bias, conv.padding)
