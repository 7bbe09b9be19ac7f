"""`python -m src.data.synthetic --out DIR [--seed 0] [--layout derm7pt|paired]`: write a
synthetic dataset folder: the derm7pt stand-in (release_v0 layout, the paper's 8 tasks) or the
second synthetic dataset (one pairs.csv, 11-class diagnosis and two binary findings)."""

from __future__ import annotations

import argparse
import logging
import time

from src.data.synthetic.paired import generate_synthetic_pairs
from src.data.synthetic.release import generate_synthetic_release
from src.utils.errors import exit_on_user_error


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="A synthetic dataset: the derm7pt stand-in or a paired-CSV dataset."
    )
    parser.add_argument("--out", required=True, help="folder to create (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--layout",
        choices=("derm7pt", "paired"),
        default="derm7pt",
        help="derm7pt: a release_v0 folder (data=synthetic); paired: pairs.csv and tasks.yaml "
        "(data=synthetic_lesions)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the progress lines
    start = time.perf_counter()
    generate = generate_synthetic_pairs if args.layout == "paired" else generate_synthetic_release
    out = generate(args.out, seed=args.seed)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
