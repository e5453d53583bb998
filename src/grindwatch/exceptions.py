"""Exceptions raised by grindwatch.

Each one subclasses the builtin it stands for, so callers can catch ``ValueError``
or ``RuntimeError`` without importing grindwatch.
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "NotFittedError"]


class InputError(ValueError):
    """A recording, table or labels file that cannot be used as given.

    The message names the file, the problem and what to change.
    """

    def __init__(self, path: object, problem: str, fix: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        if fix:
            message += f"; {fix}"
        super().__init__(message)


class ConfigError(ValueError):
    """A setting that is invalid or contradicts another setting."""


class NotFittedError(RuntimeError):
    """A model or detector was used before it was fitted."""
