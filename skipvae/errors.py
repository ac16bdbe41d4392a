"""Errors that skipvae raises on bad input, each with a message that says what is wrong and how to fix it."""


class SkipVAEError(Exception):
    """Base class of every error skipvae raises on purpose."""


class DataError(SkipVAEError):
    """A data file is missing, corrupt, has the wrong checksum, or the dataset name is unknown."""


class ConfigError(SkipVAEError, ValueError):
    """An impossible or unknown configuration value, raised before any data is loaded."""


class TrainingError(SkipVAEError):
    """Training cannot go on (for example a non-finite loss)."""


class Interrupted(SkipVAEError):
    """Training was stopped by a signal (SIGINT, SIGTERM) at a safe point, with its checkpoint written."""

    def __init__(self, message: str, signum: int = 2):
        super().__init__(message, signum)
        self.signum = signum

    def __str__(self) -> str:
        return self.args[0]
