"""The data fingerprint of a release folder: a digest of what a run reads from it.

It covers `meta/` (meta.csv and the three index files) and every file under `images/`: each
file's relative name, size and sha256. Hashing the images costs about a second per 400 MB; the
per-file digests are kept in `<cache base>/fingerprints.json` keyed by name, size and mtime, so a
second call only stats the files. A copy of a release (other mtimes) hashes again and gives the
same fingerprint; a changed, added or removed file gives another one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from src.utils.hashing import sha256_file, value_digest
from src.utils.io import atomic_write_text

log = logging.getLogger(__name__)

FINGERPRINTED_DIRS = ("meta", "images")
MEMO_FILE = "fingerprints.json"


def _files(root: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for top in FINGERPRINTED_DIRS:
        base = root / top
        for folder, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in names:
                path = Path(folder) / name
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def _read_memo(path: Path) -> dict[str, list]:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def data_fingerprint(root: str | Path, cache_base: str | Path | None = None) -> str:
    """A 16-hex-digit digest of the release at `root` (see the module docstring).

    `cache_base` holds the memo of per-file digests (default `<root>/.cache`); a folder that
    cannot be written only costs the hashing again next time.
    """
    root = Path(root)
    memo_path = Path(cache_base if cache_base is not None else root / ".cache") / MEMO_FILE
    memo = _read_memo(memo_path)
    entries: list[tuple[str, int, str]] = []
    updated: dict[str, list] = {}
    for rel, path in _files(root):
        stat = path.stat()
        key = [stat.st_size, stat.st_mtime_ns]
        cached = memo.get(rel)
        if isinstance(cached, list) and len(cached) == 3 and cached[:2] == key:
            digest = str(cached[2])
        else:
            digest = sha256_file(path)
        updated[rel] = [*key, digest]
        entries.append((rel, stat.st_size, digest))
    if updated != memo:
        try:
            memo_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(memo_path, json.dumps(updated))
        except OSError as err:
            log.debug("data fingerprint memo not written (%s): hashing again next time", err)
    return value_digest(entries)[:16]
