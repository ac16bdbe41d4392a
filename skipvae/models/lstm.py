"""LSTM decoder p(x|z) for text, with or without generative skip connections.

Predicts x[:, 1:] from x[:, :-1] (teacher forcing), as in the official `RNNVAE` (`harvardnlp/sa-vae`,
`models_text.py`; `yoonkim/skip-vae`, `models_text_skip.py`):

    e_t    = dropout(embed(x_t))
    h_t    = LSTM([e_t ; z], state),  top layer's initial hidden state Linear(z), all else zeros
    p(x_{t+1} | x_{<=t}, z) = softmax(W dropout(h_t) [; z with skips] + b)

With several layers the plain model is one stacked LSTM whose first layer alone sees z; with skips z is also
concatenated to the input of every layer (each its own single-layer LSTM) and to the LSTM output before the
vocabulary projection. With latent_dim = 0 it is the LSTM language model of the paper's Table 4: the same network
with no z (zero initial state).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from skipvae.data.text import PAD_ID
from skipvae.models.ops import upcast


class LSTMDecoder(nn.Module):
    """LSTM p(x|z): `logits(x, z)` [B, T-1, V] for the targets x[:, 1:], `log_likelihood(x, z)` [B]."""

    def __init__(self, vocab_size: int, latent_dim: int, emb_dim: int = 512, hidden: int = 1024,
                 n_layers: int = 1, dropout: float = 0.5, skip: bool = False):
        super().__init__()
        self.skip, self.n_layers, self.hidden = skip, n_layers, hidden
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.dropout = nn.Dropout(dropout)
        if skip:
            self.rnns = nn.ModuleList(
                nn.LSTM((emb_dim if i == 0 else hidden) + latent_dim, hidden, batch_first=True)
                for i in range(n_layers))
        else:
            self.rnns = nn.ModuleList([nn.LSTM(emb_dim + latent_dim, hidden, num_layers=n_layers, batch_first=True)])
        self.z_to_h0 = nn.Linear(latent_dim, hidden) if latent_dim > 0 else None
        self.out = nn.Linear(hidden + (latent_dim if skip else 0), vocab_size)

    def logits(self, x: Tensor, z: Tensor) -> Tensor:
        """Unnormalized log-probabilities [B, T-1, V] of x[:, 1:] given x[:, :-1] and z."""
        B, T = x.shape
        z_t = z.unsqueeze(1).expand(B, T - 1, z.shape[1])
        h = self.dropout(self.embedding(x[:, :-1]))
        zeros = z.new_zeros(1, B, self.hidden)
        h_top = self.z_to_h0(z).unsqueeze(0) if self.z_to_h0 is not None else zeros
        if self.skip:
            for i, rnn in enumerate(self.rnns):
                h0 = h_top if i == self.n_layers - 1 else zeros
                h, _ = rnn(torch.cat([h, z_t], dim=2), (h0, zeros))
        else:
            h0 = torch.cat([zeros.expand(self.n_layers - 1, B, self.hidden), h_top])
            h, _ = self.rnns[0](torch.cat([h, z_t], dim=2), (h0, zeros.expand(self.n_layers, B, self.hidden)))
        h = self.dropout(h)
        if self.skip:
            h = torch.cat([h, z_t], dim=2)
        return self.out(h)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) = sum over the targets (words and </s>; pads skipped) of log softmax, per example [B]."""
        logits = upcast(self.logits(x, z))  # the loss in fp32 under autocast
        target = x[:, 1:]
        nll = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD_ID, reduction="none")
        return -nll.view_as(target).sum(1)
