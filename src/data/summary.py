"""Summarise a release_v0-style folder (real or synthetic).

    python -m src.data.summary <root> [--json] [--no-verify]

Prints the cases per split, the class counts per task per split, the clinic == derm pairs and
every image path that had to be resolved case-insensitively. Every image is checked to decode
unless --no-verify. A broken folder exits with status 2 and a one-line error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from typing import Any

from src.data.cases import Release, class_counts
from src.data.derm7pt import load_release
from src.data.images import check_decodable
from src.data.tasks import TaskSpec, load_task_spec
from src.utils.errors import exit_on_user_error


def identical_images_across_splits(release: Release) -> list[dict[str, Any]]:
    """Files with the same bytes under different paths, used by cases of different splits
    (a copied image leaks a training case into the test split): one entry per content."""
    owners: dict[str, set[tuple[str, str, str]]] = {}
    for split, cases in release.splits.items():
        for case in cases:
            for path in {case.clinic, case.derm}:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                owners.setdefault(digest, set()).add((split, case.case_num, str(path)))
    found = []
    for digest, uses in sorted(owners.items()):
        if len({split for split, _, _ in uses}) > 1:
            found.append(
                {
                    "sha256": digest,
                    "cases": [{"split": s, "case_num": c, "path": p} for s, c, p in sorted(uses)],
                }
            )
    return found


def summarize(
    release: Release, spec: TaskSpec | None = None, check_content: bool = False
) -> dict[str, Any]:
    """The --json object: splits (n, counts per task and class, over the tasks of `spec`,
    default derm7pt's), duplicate_pairs, path_fixes, and with `check_content` the identical
    images shared across splits."""
    spec = spec or load_task_spec("derm7pt")
    summary = {
        "root": str(release.root),
        "tasks": spec.name,
        "splits": {
            split: {"n": len(cases), "counts": class_counts(cases, spec)}
            for split, cases in release.splits.items()
        },
        "duplicate_pairs": len(release.duplicate_pairs),
        "duplicate_pair_cases": [release.cases[i].case_num for i in release.duplicate_pairs],
        "path_fixes": list(release.path_fixes),
    }
    if check_content:
        summary["identical_images_across_splits"] = identical_images_across_splits(release)
    return summary


def format_summary(summary: dict[str, Any], spec: TaskSpec) -> str:
    splits = summary["splits"]
    names = list(splits)
    total = sum(s["n"] for s in splits.values())
    lines = [
        f"release: {summary['root']}",
        "cases: " + ", ".join(f"{s} {splits[s]['n']}" for s in names) + f" (total {total})",
        "",
        f"{'task':<5} {'class':<5}" + "".join(f"{s:>7}" for s in names) + f"{'total':>7}",
    ]
    for task in spec.tasks:
        for k, cls in enumerate(task.classes):
            counts = [splits[s]["counts"][task.name][cls] for s in names]
            label = task.name if k == 0 else ""
            lines.append(
                f"{label:<5} {cls:<5}" + "".join(f"{c:>7}" for c in counts) + f"{sum(counts):>7}"
            )
    dup = summary["duplicate_pair_cases"]
    lines += [
        "",
        f"clinic == derm pairs: {len(dup)}" + (f" (case_num {', '.join(dup)})" if dup else ""),
    ]
    fixes = summary["path_fixes"]
    lines.append(f"paths resolved case-insensitively: {len(fixes)}")
    lines += [f"  {fix}" for fix in fixes]
    for shared in summary.get("identical_images_across_splits", []):
        uses = ", ".join(f"{u['case_num']} ({u['split']}: {u['path']})" for u in shared["cases"])
        lines.append(f"WARNING: identical image bytes in cases of different splits: {uses}")
    return "\n".join(lines)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="the release_v0 folder (contains meta/ and images/)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-verify", action="store_true", help="skip decoding every image")
    parser.add_argument(
        "--tasks", default="derm7pt", help="task spec: a name under src/data/specs/ or a YAML file"
    )
    args = parser.parse_args(argv)
    spec = load_task_spec(args.tasks)
    release = load_release(args.root, spec)
    if not args.no_verify:
        for path in sorted({p for c in release.cases for p in (c.clinic, c.derm)}):
            check_decodable(path)
    summary = summarize(release, spec, check_content=not args.no_verify)
    print(json.dumps(summary) if args.json else format_summary(summary, spec))


if __name__ == "__main__":
    main()
