"""The error hierarchy: what went wrong, where, and what to do about it.

``InputError`` and ``ConfigError`` are the user's to fix (exit code 2); ``TransientError`` is worth a
retry (DNS, I/O); anything else is a bug (exit code 1).
"""

from __future__ import annotations


class CleansingError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(CleansingError):
    """Unusable input or configuration: one paragraph naming the file, the problem and the fix."""

    def __init__(self, problem: str, *, path: object = None, fix: str = "") -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        self.fix = fix
        parts = [f"{self.path}: {problem}" if self.path else problem]
        if fix:
            parts.append(fix)
        super().__init__(" ".join(parts))


class InputError(UsageError):
    """An input file that cannot be used at all (missing, empty, binary, no email column)."""


class ConfigError(UsageError):
    """A policy or mapping file, or an option, that is not valid."""


class TransientError(CleansingError):
    """A failure that may pass if tried again (network, DNS, a locked file)."""


class ConservationError(CleansingError):
    """Rows in and rows out do not add up: the run must not publish."""
