"""User-facing errors: one clear line that says what is wrong and what to do."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """Bad input from the user (config, files, data). Printed as one line, no traceback."""


# Writes that fail for lack of room: the disk, a quota, or a file-size limit (ulimit -f).
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def no_room_message(err: OSError) -> str:
    where = f" writing {err.filename}" if err.filename else ""
    return (
        f"no room{where} ({err.strerror or err}); free disk space or raise the quota/file-size "
        "limit, or point paths.log_dir elsewhere; nothing was left half-written: a run that "
        "saved a complete checkpoint resumes from it with ckpt_path=last, one that saved none "
        "starts again"
    )


def exit_on_user_error(func: F) -> F:
    """Decorate a command-line entry point: a UserError (or a write that ran out of room)
    prints `error: <message>` as one line and exits 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except OSError as err:
            if err.errno not in NO_ROOM:
                raise
            print(f"error: {no_room_message(err)}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
