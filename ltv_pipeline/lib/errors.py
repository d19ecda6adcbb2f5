"""Errors a user can act on. The CLI turns InputError into exit code 2 with its message."""

from __future__ import annotations

from collections.abc import Iterable


class InputError(ValueError):
    """Bad input or arguments: the message names the file, column or option and shows a
    sample of the offending values."""


def sample(values: Iterable[object], n: int = 5) -> str:
    """A short, readable sample of offending values for an error message."""
    out = []
    for v in values:
        out.append(repr(v))
        if len(out) == n:
            break
    return ", ".join(out)


def find_input_error(exc: BaseException | None) -> InputError | None:
    """The InputError behind an exception (Dagster wraps user errors), if there is one."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InputError):
            return exc
        seen.add(id(exc))
        nested = getattr(exc, "user_exception", None)
        exc = nested or exc.__cause__ or exc.__context__
    return None
