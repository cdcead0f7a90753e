"""The error hierarchy: what went wrong, where, and what to do about it.

``InputError`` and ``ConfigError`` are the user's to fix (exit code 2); ``TransientError`` is worth a
retry (DNS, I/O); anything else is a bug (exit code 1).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# What must never reach a terminal, a log or Prefect: addresses, phone numbers and long digit strings
# (personal and account numbers). Dates and short numbers (a row, a count) stay readable.
_EMAIL = re.compile(r"[^\s@,;:'\"<>()\[\]]*@[^\s@,;:'\"<>()\[\]]+")
_PHONE = re.compile(r"(?<![\w-])\+?\d[\d ().-]{5,}\d(?![\w-])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ][\d:.]+Z?)?|\d{1,2}[./]\d{1,2}[./]\d{2,4}")


def _mask_digits(match: re.Match[str]) -> str:
    text = match.group(0)
    if _DATE.fullmatch(text.strip()):
        return text
    return "***" if sum(ch.isdigit() for ch in text) >= 6 else text


def mask_text(text: str) -> str:
    """The text with anything that looks like an address, a phone or a long digit string masked."""
    return _PHONE.sub(_mask_digits, _EMAIL.sub("***@***", text))


def looks_personal(value: str) -> bool:
    """Whether a value (a header cell, say) looks like a contact's data rather than a column name."""
    return mask_text(value) != value


class CleansingError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(CleansingError):
    """Unusable input or configuration: one paragraph naming the file, the problem and the fix."""

    def __init__(self, problem: str, *, path: object = None, fix: str = "") -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        self.fix = fix
        problem = mask_text(problem)
        parts = [f"{self.path}: {problem}" if self.path else problem]
        if fix:
            parts.append(mask_text(fix))
        super().__init__(" ".join(parts))


class InputError(UsageError):
    """An input file that cannot be used at all (missing, empty, binary, no email column)."""


class ConfigError(UsageError):
    """A policy or mapping file, or an option, that is not valid."""


class TransientError(CleansingError):
    """A failure that may pass if tried again (network, DNS, a locked file)."""


class InternalError(CleansingError):
    """A bug, told without the data it met: the original error's type and a masked first line."""

    @classmethod
    def of(cls, exc: BaseException) -> InternalError:
        text = str(exc).strip()
        return cls(f"{type(exc).__name__}: {mask_text(text.splitlines()[0] if text else '')[:300]}")


class ConservationError(CleansingError):
    """Rows in and rows out do not add up: the run must not publish."""


# File system errors that may pass if tried again (a network share that hiccups, a busy device).
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ESTALE, errno.ETIMEDOUT})


# How libraries that do their own I/O carry the OS error in their text: polars (Rust) and Python.
_OS_ERROR = re.compile(r"\(os error (\d+)\)|\[Errno (\d+)\]")


def os_errno(exc: BaseException) -> int | None:
    """The OS error number behind ``exc``: its own, one it wraps (xlsxwriter's ``FileCreateError``), or one
    told only in its text (polars' writers raise ``ComputeError``, or ``OSError`` without an errno)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        here = todo.pop(0)
        if id(here) in seen:
            continue
        seen.add(id(here))
        if isinstance(here, OSError) and here.errno is not None:
            return int(here.errno)
        found = _OS_ERROR.search(str(here))
        if found:
            return int(found.group(1) or found.group(2))
        todo += [a for a in here.args if isinstance(a, BaseException)]
        todo += [e for e in (here.__cause__, here.__context__) if e is not None]
    return None


def file_error(exc: BaseException, path: object, doing: str) -> CleansingError:
    """What an error of the file system while reading or writing means for the run: a retry (transient),
    a full disk, or the user's to fix (exit 2)."""
    number = os_errno(exc)
    reason = os.strerror(number) if number is not None else type(exc).__name__
    if number in TRANSIENT_ERRNOS:
        return TransientError(f"{path}: {doing} failed for now ({reason}); it is tried again.")
    if number in (errno.ENOSPC, errno.EDQUOT):
        return CleansingError(f"{path}: the disk is full ({reason}) while {doing}. Free space and run again.")
    if doing.startswith("writing"):
        return InputError(f"{doing} failed ({reason}).", path=path, fix="Check that the folder can be written to.")
    return InputError(f"{doing} failed ({reason}).", path=path, fix="Check that the file exists and can be read.")


def no_space_left(folder: Path, probe: int = 1 << 16) -> bool:
    """Whether ``folder``'s file system refuses another ``probe`` bytes for want of space."""
    path = folder / ".space-probe"
    try:
        with path.open("wb") as f:
            f.write(bytes(probe))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    finally:
        path.unlink(missing_ok=True)
    return False


@contextmanager
def full_disk_told(folder: Path) -> Iterator[None]:
    """Inside the block, an error that lost the OS error behind it while ``folder``'s disk has no room
    left is the full disk. Some writers lose it (polars, when the disk fills up with a file's footer:
    "Invalid thrift: transport error"), and a task's error reaches the run masked, without its chain."""
    try:
        yield
    except Exception as exc:
        lost = isinstance(exc, InternalError) or not isinstance(exc, CleansingError)
        if lost and os_errno(exc) is None and no_space_left(folder):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder)) from exc
        raise


@contextmanager
def file_errors(path: object, doing: str) -> Iterator[None]:
    """Inside the block, an error of the file system (whichever library raised it) is ``file_error``'s."""
    try:
        yield
    except CleansingError:
        raise
    except Exception as exc:
        if not isinstance(exc, OSError) and os_errno(exc) is None:
            raise
        raise file_error(exc, path, doing) from exc
