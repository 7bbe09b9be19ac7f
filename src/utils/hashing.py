"""Content digests: of files (sha256, streamed) and of JSON-like values (canonical JSON)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(value: object) -> str:
    """One text per value: sorted keys, no whitespace, non-JSON values as their str()."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def value_digest(value: object) -> str:
    """The sha256 hex digest of `canonical_json(value)`."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()
