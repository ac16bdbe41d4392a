"""The models of the paper: `build_model(cfg, vocab_size)` returns a `VAE` for any RunConfig.

    arch      encoder                     decoder
    pixelcnn  ResNet (64 channels)        gated PixelCNN (dec_layers x dec_channels, kernels cfg.kernels)
    mlp       MLP 784-h-h                 MLP z-h, dec_layers x (h-h), h-784
    lstm      LSTM (emb_dim, enc_hidden)  LSTM (emb_dim, dec_hidden, dec_layers), dropout
    lstm, lm  none (z is 0-dimensional)   the same LSTM without z: the language model

`cfg.skip` feeds z into every decoder layer (Skip-VAE); `cfg.semi_amortized` adds `cfg.svi_steps` steps of
SVI refinement (SA-VAE); objective `bn-vae` batch-normalizes the encoder's means (MeanBatchNorm, scale
`cfg.bn_gamma`). Initialisation follows the official code: He-normal weights for the Linear layers of
the PixelCNN model, U(-a, a) for every parameter when `cfg.init_uniform = a` (text), PyTorch defaults otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skipvae.config import RunConfig
from skipvae.errors import ConfigError
from skipvae.models.bnvae import MeanBatchNorm
from skipvae.models.encoders import (
    LSTMEncoder,
    MLPEncoder,
    NoLatentEncoder,
    ResNetEncoder,
)
from skipvae.models.lstm import LSTMDecoder
from skipvae.models.mlp import MLPDecoder
from skipvae.models.pixelcnn import GatedMaskedConv2d, PixelCNNDecoder
from skipvae.models.vae import VAE, kl_to_prior, reparameterize

__all__ = ["VAE", "build_model", "kl_to_prior", "reparameterize", "ResNetEncoder", "MLPEncoder", "LSTMEncoder",
           "PixelCNNDecoder", "GatedMaskedConv2d", "MLPDecoder", "LSTMDecoder", "MeanBatchNorm"]

MIN_VOCAB = 4  # <pad>, <s>, </s> and at least one word


def build_model(cfg: RunConfig, vocab_size: int | None = None) -> VAE:
    """The VAE that `cfg` describes (arch, skip, semi-amortized, sizes); `vocab_size` is required for text."""
    if not isinstance(cfg, RunConfig):
        raise ConfigError(f"build_model needs a RunConfig (skipvae.config.make_config), got {type(cfg).__name__}.")
    text = cfg.arch == "lstm"
    if text:
        if vocab_size is None:
            raise ConfigError("the lstm model needs vocab_size (the number of token ids, len(data.vocab)); "
                              "call build_model(cfg, vocab_size=...).")
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < MIN_VOCAB:
            raise ConfigError(f"vocab_size={vocab_size!r} is impossible: it must be an integer >= {MIN_VOCAB} "
                              f"(<pad>, <s>, </s> and at least one word).")
    D = cfg.latent_dim
    if cfg.arch == "pixelcnn":
        if len(cfg.kernels) != cfg.dec_layers:
            raise ConfigError(f"dec_kernels has {len(cfg.kernels)} sizes but dec_layers={cfg.dec_layers}.")
        encoder = ResNetEncoder(D, cfg.enc_channels)
        decoder = PixelCNNDecoder(D, cfg.dec_channels, cfg.kernels, cfg.skip)
    elif cfg.arch == "mlp":
        encoder = MLPEncoder(D, cfg.mlp_hidden)
        decoder = MLPDecoder(D, cfg.mlp_hidden, cfg.dec_layers, cfg.skip)
    elif cfg.arch == "lstm":
        encoder = LSTMEncoder(vocab_size, D, cfg.emb_dim, cfg.enc_hidden) if cfg.has_latent else NoLatentEncoder()
        decoder = LSTMDecoder(vocab_size, D, cfg.emb_dim, cfg.dec_hidden, cfg.dec_layers, cfg.dropout, cfg.skip)
    else:
        raise ConfigError(f"unknown arch {cfg.arch!r}; valid choices: pixelcnn, mlp, lstm")
    model = VAE(encoder, decoder, D, text=text, vocab_size=vocab_size, skip=cfg.skip,
                svi_steps=cfg.svi_steps if cfg.semi_amortized else 0, svi_lr=cfg.svi_lr,
                svi_momentum=cfg.svi_momentum, svi_clip=cfg.svi_clip,
                mu_norm=MeanBatchNorm(D, cfg.bn_gamma) if cfg.objective == "bn-vae" else None)
    if cfg.arch == "pixelcnn":
        he_normal_linears(model)
    if cfg.init_uniform is not None:
        uniform_init(model, cfg.init_uniform)
    if cfg.objective == "bn-vae":
        model.mu_norm.reset_parameters()  # the learned shift starts at 0, whatever the initialisation above
    return model


def he_normal_linears(model: nn.Module) -> None:
    """Every nn.Linear weight ~ N(0, 2 / fan_in), biases unchanged (the official CNNVAE's `he_init`)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, math.sqrt(2.0 / m.in_features))


def uniform_init(model: nn.Module, a: float) -> None:
    """Every parameter ~ U(-a, a) (the official text models: a = 0.1)."""
    if a <= 0:
        raise ConfigError(f"init_uniform={a} must be positive (the official text models use 0.1), or None.")
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-a, a)
