"""Errors a user can act on. The CLI prints their message alone, without a traceback."""


class SrIqaError(Exception):
    """Base class: the message says what is wrong and what to do."""


class OptionsError(SrIqaError):
    """An option file or override is invalid (unknown key, wrong type, missing value)."""


class DataError(SrIqaError):
    """A dataset file is missing, unreadable or inconsistent."""


class MetricUnavailableError(SrIqaError):
    """A metric or network cannot be built here: its weights are missing offline, or a package it imports is."""


class WeightsUnavailableError(MetricUnavailableError):
    """A metric or network needs weight files that are not on disk and cannot be downloaded."""


class OutputPathError(SrIqaError):
    """An output path names what a command must not write over or into: a folder, a device, a path under a file,
    the inputs themselves."""


class RunFolderError(SrIqaError):
    """The experiment folder is in a state that would lose work if we went on."""


class NonFiniteError(SrIqaError):
    """Training diverged (a NaN or infinite loss or weight), or a weights file holds such values."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a one-line error quotes
    of a library's refusal."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
