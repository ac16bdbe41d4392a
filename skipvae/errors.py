"""Errors that skipvae raises on bad input, each with a message that says what is wrong and how to fix it."""


class SkipVAEError(Exception):
    """Base class of every error skipvae raises on purpose."""


class DataError(SkipVAEError):
    """A data file is missing, corrupt, has the wrong checksum, or the dataset name is unknown."""


class ConfigError(SkipVAEError, ValueError):
    """An impossible or unknown configuration value, raised before any data is loaded."""


class TrainingError(SkipVAEError):
    """Training cannot go on (for example a non-finite loss)."""
