"""Exceptions that reach the user as one clear line (what, where, how to fix)."""


class ReprotextError(Exception):
    """A problem the user can fix: bad input, bad params, a mismatched artefact."""


class ConfigError(ReprotextError):
    """params.yaml has an unknown key, a wrong type or an out-of-range value."""


class DataError(ReprotextError):
    """An input dataset is missing, unreadable or unusable."""


class ArtifactError(ReprotextError):
    """A stage artefact is missing, corrupted or does not match its partner."""
