"""A synthetic stand-in for the derm7pt release, in the real `release_v0` format.

    python -m src.data.synthetic --out DIR [--seed 0]

release.py plans the cases and writes the release; design.py turns a case's labels into a
lesion and its two views; render.py draws them.

Writes meta/meta.csv (all 19 columns, real raw value strings), the three index files (413/203/395
cases) and images/<FOLDER>/<file> JPEG pairs of varied sizes. Labels follow the real class totals
exactly (DIAG also per split), deterministically from the seed; the images carry label-dependent
structure (design.py), sharp in dermoscopy, faint in the clinical view. The real
release's quirks are reproduced: one meta.csv path whose folder case differs from the folder on
disk, mixed .jpg/.JPG names, and 9 cases whose clinical image is their dermoscopy image.
Beside them, lesions.csv records each image's lesion box (src/data/lesions.py).
"""

from src.data.synthetic.release import generate_synthetic_release

__all__ = ["generate_synthetic_release"]
