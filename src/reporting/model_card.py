"""The model card (README.md, Hugging Face card format) and summary of one published
configuration: the recipe, the data fingerprint, mean +- std over seeds, per-label AUC,
intended use and limits."""

from __future__ import annotations

from typing import Any

from src.reporting.aggregate import ConfigResult
from src.reporting.cells import PCT, avg_acc, avg_auc, label_auc, stat_text
from src.reporting.naming import describe, setting

LIMITS = """\
- **Research use only. This is not a medical device** and has not been evaluated or approved
  for diagnosis, triage or any clinical decision. Do not use it on patients.
- The numbers above are on the test split of the data it was trained on (fingerprint above);
  they say nothing about other cameras, clinics, skin types or populations.
- It predicts the tasks of `tasks.json` ({tasks}) for one lesion from one clinical and one
  dermoscopic image, preprocessed exactly as `src.predict` does (resize to the training size,
  per-stream normalisation); other inputs are out of scope."""


def summary(result: ConfigResult, default_seed: int) -> dict[str, Any]:
    """metrics.json of a published configuration: mean +- std (in %) over seeds, per-label
    AUC, and each seed's test and validation AVG AUC / AVG ACC."""
    tasks = result.tasks

    def stat(s: Any) -> dict[str, Any]:
        return {"mean": s.mean, "std": s.std, "n": s.n}

    return {
        "configuration": describe(result.config),
        "setting": setting(result.config),
        "seeds": result.seeds,
        "default_seed": default_seed,
        "units": "% on the test split, mean and sample std (ddof=1) over seeds",
        "avg_auc": stat(avg_auc(result)),
        "avg_acc": stat(avg_acc(result)),
        "auc": {label: stat(label_auc(result, label)) for label in tasks.all_labels},
        "per_seed": {
            str(r.seed): {
                "avg_auc": r.metrics["avg_auc"],
                "avg_acc": r.metrics["avg_acc"],
                "valid_avg_auc": r.metrics["valid"]["avg_auc"],
                "valid_avg_acc": r.metrics["valid"]["avg_acc"],
            }
            for r in result.runs
            if r.metrics is not None
        },
    }


def _front_matter(result: ConfigResult) -> Any:
    from huggingface_hub import ModelCardData

    return ModelCardData(
        license="mit",
        library_name="pytorch",
        pipeline_tag="image-classification",
        tags=["skin-lesion", "dermatology", "multi-modal", "multi-label", "safetensors"],
        metrics=["roc_auc", "accuracy"],
        model_name=describe(result.config),
    )


def _per_label(result: ConfigResult) -> list[str]:
    tasks = result.tasks
    lines = ["| label | AUC % (mean ± std) | in AVG AUC |", "|---|---:|:---:|"]
    averaged = set(tasks.avg_auc_labels)
    for label in tasks.all_labels:
        mark = "yes" if label in averaged else ""
        lines.append(f"| {label} | {stat_text(label_auc(result, label))} | {mark} |")
    return lines


def _per_seed(info: dict[str, Any]) -> list[str]:
    lines = [
        "| seed | test AVG AUC % | test AVG ACC % | valid AVG AUC % |",
        "|---:|---:|---:|---:|",
    ]
    for seed, m in info["per_seed"].items():
        lines.append(
            f"| {seed} | {PCT * m['avg_auc']:.2f} | {PCT * m['avg_acc']:.2f} | "
            f"{PCT * m['valid_avg_auc']:.2f} |"
        )
    return lines


def model_card(
    result: ConfigResult, identity: dict[str, Any], info: dict[str, Any], with_onnx: bool
) -> str:
    """README.md of a published configuration (YAML front matter + Markdown), via
    huggingface_hub's ModelCard."""
    from huggingface_hub import ModelCard

    name = describe(result.config)
    seeds = ", ".join(str(s) for s in result.seeds)
    default = info["default_seed"]
    tasks = result.tasks
    body = [
        f"# {name}: asymmetric multi-modal fusion for skin lesion classification",
        "",
        f"Multi-label classification of {len(tasks.tasks)} tasks ({tasks.num_outputs} labels, "
        f"task spec `{tasks.name}`) from a clinical and a dermoscopic image of one lesion, "
        'as in "Pay Less On Clinical Images" (AMMFM). Trained with this repository\'s '
        "`src.train`.",
        "",
        "## Recipe",
        "",
        f"- configuration: {name}; setting: {setting(result.config)}",
        f"- seeds: {seeds} (`seed<N>/model.safetensors`); `ckpt_path=<this folder>` loads "
        f"seed {default}, the best on the validation split (AVG AUC)",
        "- the full resolved training config: `seed<N>/config.yaml`; the fusion weights of "
        "Eq. 4 (chosen on validation): `seed<N>/fusion_weights.json`; the task spec: "
        "`tasks.json`",
        f"- result identity (configuration digest): `{identity.get('configuration')}` "
        "(`identity.json`: every setting that can change the numbers)",
        f"- data fingerprint: `{identity.get('data')}` (sha256 over the files read and the "
        "task spec)",
        f"- weights at the start: {identity.get('weights')}",
        "",
        "## Results (test split)",
        "",
        f"- AVG AUC: {stat_text(avg_auc(result))} % (mean ± std over {result.n} seeds)",
        f"- AVG ACC: {stat_text(avg_acc(result))} %",
        "",
        *_per_seed(info),
        "",
        "Per-label AUC:",
        "",
        *_per_label(result),
        "",
        "## Use",
        "",
        "```bash",
        "python -m src.predict ckpt_path=<this folder>[/seed<N>] clinic=<a.jpg> derm=<b.jpg>",
        "python -m src.eval ckpt_path=<this folder>/seed<N> data.root=<release folder>",
        "python -m src.export ckpt_path=<this folder>/seed<N> out=model.onnx",
        "```",
        "",
        "Every file is listed with its sha256 in `manifest.json`; loading refuses a folder "
        "whose files do not match.",
    ]
    if with_onnx:
        body += [
            "`seed<N>/model.onnx` is the fused predictor (both images in, P_FI out, the TTA "
            "views inside); `seed<N>/model.onnx.json` says how to feed it."
        ]
    limits = LIMITS.format(tasks=", ".join(tasks.task_names))
    body += ["", "## Intended use and limits", "", limits, ""]
    content = f"---\n{_front_matter(result).to_yaml()}\n---\n\n" + "\n".join(body)
    return str(ModelCard(content))
