"""Exceptions that the command line reports as one clear message instead of a traceback."""


class OlrError(Exception):
    """An error in user input or configuration; the message names the value and the fix."""


class DataError(OlrError):
    """Invalid or unreadable input data: the message names the file, line or value."""


class TrainingError(OlrError):
    """Training failed in a way the user must act on (collapse, non-finite loss)."""
