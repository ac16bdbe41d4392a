"""Text data: a vocabulary and length-bucketed batches of documents.

Ids: 0 = <pad>, 1 = <s>, 2 = </s>, then the words of vocab.txt in file order. A batch is a LongTensor [B, T]:
`<s> w1 ... wn </s>` then <pad> up to the batch's longest document (T = longest n + 2).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from skipvae.data.batching import SPLITS, check_count, check_split, generator_for
from skipvae.errors import ConfigError, DataError

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
UNK = "_UNK"


class Vocab:
    """Word <-> id: the three special tokens, then `words` in order; unknown words map to `_UNK`."""

    def __init__(self, words: Sequence[str]):
        self.itos = [PAD, BOS, EOS] + list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise DataError("the vocabulary has duplicate words (or contains <pad>, <s>, </s>); "
                            "run `python -m skipvae data check`.")
        if UNK not in self.stoi:
            raise DataError(f"the vocabulary has no {UNK} token; run `python -m skipvae data check`.")
        self.unk_id = self.stoi[UNK]

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Ids of the whitespace tokens of `text` (no <s> / </s>); unknown words become `_UNK`."""
        return [self.stoi.get(w, self.unk_id) for w in text.split()]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The words of `ids` joined by spaces, dropping <pad>, <s> and </s>."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return " ".join(self.itos[i] for i in ids if i > EOS_ID)


def pad_batch(docs: Sequence[Sequence[int]]) -> torch.Tensor:
    """LongTensor [B, max n + 2]: each row `<s> w1 ... wn </s>` then <pad> (0)."""
    x = torch.full((len(docs), max(len(d) for d in docs) + 2), PAD_ID, dtype=torch.long)
    for row, doc in enumerate(docs):
        x[row, 0] = BOS_ID
        x[row, 1:len(doc) + 1] = torch.as_tensor(doc, dtype=torch.long)
        x[row, len(doc) + 1] = EOS_ID
    return x


class TextData:
    """Documents (lists of word ids, no special tokens) for train / valid / test, with a Vocab.

    `n_train`, `n_valid`, `n_test` keep only the first n documents of a split.
    """

    def __init__(self, name: str, vocab: Vocab, splits: dict[str, list[np.ndarray]], n_train: int | None = None,
                 n_valid: int | None = None, n_test: int | None = None, notes: str = ""):
        self.name, self.vocab, self.notes = name, vocab, notes
        self._docs = {}
        for split, n in zip(SPLITS, (n_train, n_valid, n_test)):
            check_count(f"n_{split}", n)
            docs = splits[split]
            if n is not None and n > len(docs):
                raise ConfigError(f"n_{split}={n} exceeds the {len(docs)} {split} documents of {name}; "
                                  f"use at most {len(docs)} or None for the whole split.")
            self._docs[split] = docs[:n] if n is not None else docs
        self._lengths = {s: np.array([len(d) for d in self._docs[s]], dtype=np.int64) for s in SPLITS}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={self.num_examples(s)}" for s in SPLITS)
        return f"TextData({self.name!r}, vocab={len(self.vocab)}, {sizes})"

    def num_examples(self, split: str) -> int:
        check_split(split)
        return len(self._docs[split])

    def num_tokens(self, split: str) -> int:
        """Predicted tokens of a split: its words plus one </s> per document (the per-word NLL denominator)."""
        check_split(split)
        return int(self._lengths[split].sum()) + len(self._docs[split])

    def documents(self, split: str) -> list[np.ndarray]:
        """The documents of a split as arrays of word ids (no <s> / </s>)."""
        check_split(split)
        return self._docs[split]

    def batches(self, split: str, batch_size: int, epoch: int = 0, seed: int = 0, shuffle: bool | None = None,
                limit: int | None = None) -> Iterator[tuple[torch.Tensor, None]]:
        """Yield (x [B, T], None), documents of similar length together.

        The documents are sorted by length (stably) and cut into batches of `batch_size`. With `shuffle`
        (default for 'train') the documents are permuted before the stable sort, so equal-length documents
        change batches, and the order of the batches is shuffled: both deterministic given (seed, epoch).
        `limit` keeps the first n documents of the split.
        """
        check_split(split)
        check_count("batch_size", batch_size)
        check_count("limit", limit)
        docs = self._docs[split][:limit] if limit else self._docs[split]
        lengths = self._lengths[split][: len(docs)]
        shuffle = (split == "train") if shuffle is None else shuffle
        g = generator_for(seed, epoch)
        perm = torch.randperm(len(docs), generator=g).numpy() if shuffle else np.arange(len(docs))
        order = perm[np.argsort(lengths[perm], kind="stable")]
        chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        if shuffle:
            chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=g).tolist()]
        for chunk in chunks:
            yield pad_batch([docs[i] for i in chunk]), None
