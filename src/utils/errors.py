"""User-facing errors: one clear line that says what is wrong and what to do."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """Bad input from the user (config, files, data). Printed as one line, no traceback."""


def exit_on_user_error(func: F) -> F:
    """Decorate a command-line entry point: a UserError prints `error: <message>` and exits 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
