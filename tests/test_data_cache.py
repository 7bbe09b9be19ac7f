"""The decoded-image cache: hits never decode a JPEG, bad entries are rebuilt, not trusted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from src.data.cache import ImageCache
from src.data.derm7pt import load_release
from src.utils.errors import UserError
from tests.train_helpers import HANG_GUARD_S


@pytest.fixture
def opens(monkeypatch) -> list[str]:
    """Every PIL.Image.open call, recorded (the call still goes through)."""
    calls: list[str] = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        calls.append(str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return calls


@pytest.fixture
def images(synthetic_release):
    release = load_release(synthetic_release)
    return release.images_dir, [c.derm for c in release.cases[:3]]


def test_disk_cache_hit_does_not_decode(images, tmp_path, opens):
    source_root, paths = images
    first = ImageCache(48, "disk", tmp_path, source_root)
    built = [first.get(p) for p in paths]
    assert len(opens) == 3
    entry = first.entry_path(paths[0])
    assert entry.is_file() and entry.parent == tmp_path / "48" / paths[0].parent.name

    again = ImageCache(48, "disk", tmp_path, source_root)  # a later run / epoch
    for p, arr in zip(paths, built):
        hit = again.get(p)
        assert hit.shape == (48, 48, 3) and hit.dtype == np.uint8
        np.testing.assert_array_equal(hit, arr)
    assert len(opens) == 3

    other_size = ImageCache(64, "disk", tmp_path, source_root)  # keyed by image size
    other_size.get(paths[0])
    assert len(opens) == 4 and other_size.entry_path(paths[0]).is_file()


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: entry.write_bytes(b"\x93NUMPY garbage"),
        lambda entry: entry.write_bytes(entry.read_bytes()[:200]),
        lambda entry: np.save(entry, np.zeros((10, 10, 3), np.uint8)),
        lambda entry: np.save(entry, np.zeros((48, 48, 3), np.float32)),
    ],
    ids=["garbage", "truncated", "wrong-shape", "wrong-dtype"],
)
def test_bad_disk_entry_is_rebuilt(images, tmp_path, opens, damage):
    source_root, paths = images
    cache = ImageCache(48, "disk", tmp_path, source_root)
    good = cache.get(paths[0])
    entry = cache.entry_path(paths[0])
    damage(entry)
    opens.clear()
    np.testing.assert_array_equal(cache.get(paths[0]), good)
    assert len(opens) == 1  # decoded again
    np.testing.assert_array_equal(np.load(entry), good)  # and the entry repaired
    opens.clear()
    cache.get(paths[0])
    assert opens == []


def test_a_replaced_jpeg_is_not_served_from_the_old_entry(tmp_path, opens, release_copy):
    cases = load_release(release_copy).cases
    path, other = cases[0].derm, cases[1].derm
    cache = ImageCache(48, "disk", tmp_path, release_copy / "images")
    old = cache.get(path)
    path.unlink()  # a symlink into the shared release: replace it, do not write through it
    path.write_bytes(other.read_bytes())
    opens.clear()
    np.testing.assert_array_equal(cache.get(path), cache.get(other))
    assert not np.array_equal(cache.get(path), old)
    assert len(opens) == 2  # the replaced file and `other`, each decoded once


def test_memory_and_none_modes(images, opens):
    _, paths = images
    memory = ImageCache(40, "memory")
    a = memory.get(paths[0])
    b = memory.get(paths[0])
    assert a is b and len(opens) == 1
    none = ImageCache(40, "none")
    np.testing.assert_array_equal(none.get(paths[0]), a)
    none.get(paths[0])
    assert len(opens) == 3  # decodes every time


def test_warm_fills_the_cache_and_stops_on_a_corrupt_jpeg(release_copy, tmp_path, opens):
    release = load_release(release_copy)
    paths = [c.derm for c in release.cases[:6]]
    cache = ImageCache(32, "disk", tmp_path, release.images_dir)
    cache.warm(paths, threads=2)
    assert all(cache.entry_path(p).is_file() for p in paths)
    opens.clear()
    cache.warm(paths, threads=2)
    assert opens == []

    bad = release.cases[7].clinic
    data = bad.read_bytes()
    bad.unlink()  # a symlink into the shared release: replace it, do not write through it
    bad.write_bytes(data[: len(data) // 3])
    for mode in ("disk", "none"):
        with pytest.raises(UserError) as info:
            ImageCache(32, mode, tmp_path / mode, release.images_dir).warm([bad])
        assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_bad_mode_and_unwritable_dir(images, tmp_path):
    source_root, paths = images
    with pytest.raises(UserError, match=r"data\.cache must be one of"):
        ImageCache(32, "ram")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=r"data\.cache_dir"):
        ImageCache(32, "disk", blocker, source_root).get(paths[0])


def test_an_entry_replaced_by_a_folder_is_named(images, tmp_path):
    root, paths = images
    cache = ImageCache(16, "disk", tmp_path / "cache", root)
    entry = cache.entry_path(paths[0])
    entry.mkdir(parents=True)
    with pytest.raises(UserError, match=r"^image cache entry .* is a folder") as err:
        cache.get(paths[0])
    assert str(entry) in str(err.value) and "\n" not in str(err.value)


def test_no_room_for_the_cache_says_so_and_names_the_ways_out(images, tmp_path):
    """A full disk (here: the file-size limit of the process, as `ulimit -f`, the same OSError
    family as ENOSPC) is one line naming the cache folder and data.cache_dir/data.cache, not a
    permissions hint with '(None)': numpy's file writer drops the errno, one write keeps it."""
    import resource
    import subprocess
    import sys

    from src.project import PROJECT_ROOT

    root, paths = images
    cache_dir = tmp_path / "cache"
    script = (
        "import sys; from pathlib import Path; from src.data.cache import ImageCache\n"
        "from src.utils.errors import UserError\n"
        f"cache = ImageCache(224, 'disk', {str(cache_dir)!r}, {str(root)!r})\n"
        f"try: cache.get(Path({str(paths[0])!r}))\n"
        "except UserError as err: print(err); sys.exit(2)\n"
    )

    def small_files() -> None:  # an entry at 224 px is 147 KiB: its write runs out of room
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stdout.strip()
    assert line.startswith(f"no room for the image cache in {cache_dir / '224'} (File too large)")
    assert "data.cache_dir" in line and "data.cache=memory" in line and "None" not in line
    assert "\n" not in line
    leftovers = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert leftovers == []  # the partial entry is not left behind
