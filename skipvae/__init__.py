"""skipvae: a replication of Dieng, Kim, Rush & Blei, "Avoiding Latent Variable Collapse With
Generative Skip Models" (AISTATS 2019)."""

from skipvae.errors import ConfigError, DataError, SkipVAEError, TrainingError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "SkipVAEError", "TrainingError", "__version__"]
