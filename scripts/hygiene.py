"""Offline replacements for the usual pre-commit hygiene hooks.

Usage: ``python scripts/hygiene.py {trailing-whitespace,end-of-file,large-files} FILE...``.
Whitespace hooks fix files in place and exit 1 when they changed something, like the originals.
"""

from __future__ import annotations

import sys
from pathlib import Path

MAX_BYTES = 1_000_000


def _fix_trailing_whitespace(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    fixed = "\n".join(line.rstrip() for line in text.split("\n"))
    if fixed != text:
        path.write_text(fixed, encoding="utf-8")
        return True
    return False


def _fix_end_of_file(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    if not text:
        return False
    fixed = text.rstrip("\n") + "\n"
    if fixed != text:
        path.write_text(fixed, encoding="utf-8")
        return True
    return False


def _large_file(path: Path) -> bool:
    if path.stat().st_size > MAX_BYTES:
        print(f"{path}: {path.stat().st_size} bytes is over the {MAX_BYTES} byte limit")
        return True
    return False


CHECKS = {
    "trailing-whitespace": _fix_trailing_whitespace,
    "end-of-file": _fix_end_of_file,
    "large-files": _large_file,
}


def main(argv: list[str]) -> int:
    check = CHECKS[argv[0]]
    failed = False
    for name in argv[1:]:
        path = Path(name)
        try:
            failed |= check(path)
        except UnicodeDecodeError:
            continue
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
