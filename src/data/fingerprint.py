"""The data fingerprint of a dataset: a digest of what a run reads from it.

It covers the files the datamodule names (`PairDataModule.fingerprint_files`: for a derm7pt
release `meta/` and every file under `images/`; for a paired CSV the CSV and its images) by
relative name, size and sha256, and the task spec that turns their values into labels.
Hashing the images costs about a second per 400 MB; the
per-file digests are kept in `<cache base>/fingerprints.json` keyed by name, size and mtime, so a
second call only stats the files. A copy of a release (other mtimes) hashes again and gives the
same fingerprint; a changed, added or removed file gives another one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from src.utils.hashing import sha256_file, value_digest
from src.utils.io import atomic_write_text

log = logging.getLogger(__name__)

MEMO_FILE = "fingerprints.json"


def _read_memo(path: Path) -> dict[str, list]:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def data_fingerprint(
    files: list[tuple[str, Path]], cache_base: str | Path, tasks_digest: str = ""
) -> str:
    """A 16-hex-digit digest of `files` ((relative name, path) pairs) and the task spec's
    digest (see the module docstring).

    `cache_base` holds the memo of per-file digests; a folder that cannot be written only costs
    the hashing again next time.
    """
    memo_path = Path(cache_base) / MEMO_FILE
    memo = _read_memo(memo_path)
    entries: list[tuple[str, int, str]] = []
    updated: dict[str, list] = {}
    for rel, path in files:
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
    return value_digest([entries, tasks_digest] if tasks_digest else entries)[:16]
