"""Decoded, resized images kept on disk or in memory, keyed by image size.

Training for 250 epochs would otherwise decode and resize every full-size JPEG 250 times. With
`mode="disk"` each image is stored once as `<cache_dir>/<size>/<path under images/>.<bytes>-<mtime
ns>.npy` (a size x size x 3 uint8 array, about 147 KiB at 224 px): the JPEG's size and mtime in
the name mean a replaced JPEG, or another release sharing the cache folder, never picks up a
wrong entry. A disk entry that cannot be read back as the right array is rebuilt from the JPEG
rather than trusted. With `mode="memory"` the arrays live in the process (filled before
DataLoader workers fork, so they share it); `mode="none"` decodes on every access.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from src.config import CACHE_MODES
from src.data.images import DEFAULT_LIMITS, ImageLimits, check_decodable, decode_rgb, resize_square
from src.utils.errors import NO_ROOM, UserError
from src.utils.io import atomic_path
from src.utils.progress import track

log = logging.getLogger(__name__)


def check_cache_mode(mode: str) -> None:
    if mode not in CACHE_MODES:
        raise UserError(f"data.cache must be one of {', '.join(CACHE_MODES)}, got {mode!r}")


class ImageCache:
    """`get(path)` returns the image at `path` resized to size x size, uint8 RGB."""

    def __init__(
        self,
        size: int,
        mode: str = "disk",
        cache_dir: str | os.PathLike[str] | None = None,
        source_root: str | os.PathLike[str] | None = None,
        limits: ImageLimits = DEFAULT_LIMITS,
    ):
        check_cache_mode(mode)
        if mode == "disk" and cache_dir is None:
            raise ValueError("a disk cache needs a cache_dir")
        self.size = size
        self.mode = mode
        self.dir = Path(cache_dir) / str(size) if cache_dir is not None else None
        self.source_root = Path(source_root) if source_root is not None else None
        self.limits = limits
        self._memory: dict[Path, np.ndarray] = {}

    def entry_path(self, path: Path) -> Path:
        """Where the disk entry of the image at `path`, as it is now, lives."""
        assert self.dir is not None
        if self.source_root is not None and path.is_relative_to(self.source_root):
            rel = path.relative_to(self.source_root).as_posix()
        else:  # outside the release's images/: a stable name from the absolute path
            rel = "_abs/" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()
        try:
            st = path.stat()
        except OSError as err:
            raise UserError(f"cannot read image {path} ({err.strerror})") from None
        return self.dir / f"{rel}.{st.st_size}-{st.st_mtime_ns}.npy"

    def _build(self, path: Path) -> np.ndarray:
        image = decode_rgb(path, self.size, self.limits)
        return np.ascontiguousarray(resize_square(image, self.size))

    def _read_entry(self, entry: Path) -> np.ndarray | None:
        try:
            arr = np.load(entry, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if arr.dtype != np.uint8 or arr.shape != (self.size, self.size, 3):
            return None
        return arr

    def _write_entry(self, entry: Path, arr: np.ndarray) -> None:
        if entry.is_dir():
            raise UserError(
                f"image cache entry {entry} is a folder, not a cached image; delete it (or the "
                f"whole cache folder {self.dir}) and run again"
            )
        buffer = io.BytesIO()
        np.save(buffer, arr)
        try:
            # One write of the whole entry: numpy's own file writer reports a full disk as an
            # OSError without errno ("N requested and 0 written").
            with atomic_path(entry) as tmp:
                tmp.write_bytes(buffer.getbuffer())
        except OSError as err:
            raise UserError(self._write_problem(err)) from None

    def _write_problem(self, err: OSError) -> str:
        reason = err.strerror or str(err)
        if err.errno in NO_ROOM:
            return (
                f"no room for the image cache in {self.dir} ({reason}): the disk is full or a "
                "quota or file-size limit was reached; free space there, set data.cache_dir to "
                "a folder on another disk, or use data.cache=memory (or data.cache=none)"
            )
        return (
            f"cannot write the image cache in {self.dir} ({reason}); set data.cache_dir to a "
            "writable folder or use data.cache=memory"
        )

    def get(self, path: Path) -> np.ndarray:
        if self.mode == "none":
            return self._build(path)
        if self.mode == "memory":
            arr = self._memory.get(path)
            if arr is None:
                arr = self._memory[path] = self._build(path)
            return arr
        entry = self.entry_path(path)
        arr = self._read_entry(entry)
        if arr is None:
            arr = self._build(path)
            self._write_entry(entry, arr)
        return arr

    def _check(self, path: Path) -> None:
        check_decodable(path, self.limits)

    def warm(self, paths: Iterable[Path], threads: int = 1) -> None:
        """Fill the cache for `paths` (for mode "none": check that every image decodes).

        Run before DataLoader workers start, so a bad image stops set-up with a one-line error
        and workers only ever read cached arrays.
        """
        unique = sorted(set(paths))
        work = self._check if self.mode == "none" else self.get
        what = f"image cache ({self.mode}, {self.size} px): images"
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for _ in track(pool.map(work, unique), len(unique), what, log):
                pass
