"""Samples and reconstructions for the figures: ancestral sampling of images, greedy decoding of text."""

from __future__ import annotations

import torch
from torch import Tensor

from skipvae.data import BOS_ID, EOS_ID, PAD_ID
from skipvae.models import PixelCNNDecoder


@torch.no_grad()
def sample_images(model, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x ~ p(x|z) [B, 1, 28, 28]: pixel by pixel in raster order for the PixelCNN (each pixel's Bernoulli logit
    depends only on the pixels before it), in one draw for the MLP decoder."""
    model.eval()
    B = z.shape[0]
    x = z.new_zeros(B, 1, 28, 28)
    if not isinstance(model.decoder, PixelCNNDecoder):
        return torch.bernoulli(torch.sigmoid(model.decoder.logits(x, z)), generator=generator)
    for i in range(28):
        for j in range(28):
            p = torch.sigmoid(model.decoder.logits(x, z)[:, :, i, j])
            x[:, :, i, j] = torch.bernoulli(p, generator=generator)
    return x


@torch.no_grad()
def greedy_decode(model, z: Tensor, max_len: int = 40) -> list[list[int]]:
    """argmax_w p(w_t | w_<t, z) token by token until </s> (or max_len words); returns word ids per row."""
    model.eval()
    B = z.shape[0]
    x = torch.full((B, 2), PAD_ID, dtype=torch.long, device=z.device)
    x[:, 0] = BOS_ID
    done = torch.zeros(B, dtype=torch.bool, device=z.device)
    for t in range(max_len):
        nxt = model.decoder.logits(x, z)[:, -1].argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, PAD_ID), nxt)
        x[:, -1] = nxt
        done |= nxt == EOS_ID
        if bool(done.all()):
            break
        x = torch.cat([x, x.new_full((B, 1), PAD_ID)], dim=1)
    return [[int(w) for w in row[1:] if int(w) not in (PAD_ID, EOS_ID, BOS_ID)] for row in x]
