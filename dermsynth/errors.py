"""The user's mistakes, as opposed to the project's bugs.

A `UserError` is something the user can fix (a parameter, a path, a data file): stage scripts and
`dermsynth` commands print it as `ERROR: <line>` lines and exit 1, without a traceback. Anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the parameters or the data; its message is one line per problem."""


class UserValueError(UserError, ValueError):
    """A value that cannot be used (also a ValueError, for callers that catch those)."""


class UserFileError(UserError, FileNotFoundError):
    """A file or folder the parameters name does not exist."""
