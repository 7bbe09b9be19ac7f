"""`python -m src.data.synthetic --out DIR [--seed 0]`: write a synthetic release folder."""

from __future__ import annotations

import argparse
import logging
import time

from src.data.synthetic.release import generate_synthetic_release
from src.utils.errors import exit_on_user_error


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="A synthetic stand-in for the derm7pt release, in the real `release_v0` format."
    )
    parser.add_argument("--out", required=True, help="folder to create (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the progress lines
    start = time.perf_counter()
    out = generate_synthetic_release(args.out, seed=args.seed)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
