"""The import layers (scripts/import_layers.py): entry scripts import none of each other, every
import points down, and no entry script is more than 8 layers deep."""

from __future__ import annotations

import subprocess
import sys

from src.project import PROJECT_ROOT


def test_imports_point_down_and_stay_shallow() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/import_layers.py"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a static scan; generous so a busy machine cannot fail it
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every import points down." in result.stdout
