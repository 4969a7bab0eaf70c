"""``model_card.md``: what the study's kept models are for and how they did.

The sections of a model card (Mitchell et al. 2019): intended use, data,
metrics with intervals, calibration, the operating point, subgroup results
and known limitations, written from the study's results only.
"""

import numpy as np

__all__ = ["LABEL_ORIGINS", "model_card", "to_markdown"]

#: How each layout's labels were made: the first limitation a reader weighs.
LABEL_ORIGINS = {
    "synthetic": "generated with the images (exact by construction)",
    "kermany": "graded by expert physicians (Kermany et al. 2018)",
    "chestxray14": "mined from radiology reports by NLP (Wang et al. 2017); "
    "about 10% of labels are estimated to be wrong",
    "chexpert": "mined from radiology reports by the CheXpert labeler "
    "(Irvin et al. 2019), with uncertain mentions",
    "mimic": "mined from radiology reports by the CheXpert or NegBio labeler "
    "(Johnson et al. 2019)",
    "padchest": "27% annotated by radiologists, the rest by an NLP model trained "
    "on them (Bustos et al. 2020)",
    "rsna": "boxes drawn by radiologists on ChestX-ray14 images (Shih et al. 2019)",
    "vindr": "annotated by three radiologists per image (Nguyen et al. 2022)",
    "siim": "pneumothorax masks drawn by radiologists on ChestX-ray14 images",
}


def _value(row, name):
    value = row.get(name, np.nan)
    if value is None or np.isnan(value):
        return "not estimable"
    low, high = row.get(f"{name} CI low"), row.get(f"{name} CI high")
    return f"{value:.3f} [95% CI {low:.3f}, {high:.3f}]"


def _task_blocks(result):
    best = result["best"]
    row = next(r for r in result["rows"] if r["model"] == best)
    blocks = [
        ("h3", f"{result['task'].capitalize()} classification: {best}"),
        (
            "p",
            f"Kept on the validation split by macro F1, scored once on "
            f"{row['test images']} test images.",
        ),
        (
            "table",
            [
                {"metric": name, "value": _value(row, name)}
                for name in ("accuracy", "macro F1", "ROC AUC", "FNFR")
            ],
        ),
        (
            "p",
            f"Calibration: ECE {_value(row, 'ECE')} as trained, "
            f"{_value(row, 'ECE calibrated')} after temperature scaling "
            f"(T = {row.get('temperature', np.nan):.2f}, fitted on the validation "
            "split).",
        ),
    ]
    threshold = row.get("operating threshold")
    if threshold is None:
        blocks.append(
            ("p", "No operating point: the validation split has one class only.")
        )
    else:
        blocks.append(
            (
                "p",
                f"Operating point: 'any finding' when P(finding) >= {threshold:.3f}, "
                f"chosen on the validation split for a sensitivity of "
                f"{row['target sensitivity']:g}; on the test split sensitivity "
                f"{_value(row, 'sensitivity at threshold')}, specificity "
                f"{_value(row, 'specificity at threshold')}.",
            )
        )
    called = [s for s in result["subgroups"] if s["gap called"]]
    estimable = [s for s in result["subgroups"] if s["estimable"]]
    if not result["subgroups"]:
        blocks.append(("p", "Subgroups: no attribute (sex, age, view) is known."))
    elif called:
        blocks.append(("p", "Subgroup gaps whose 95% interval excludes 0:"))
        blocks.append(
            (
                "ul",
                [
                    f"{s['metric']}, {s['attribute']} = {s['group']}: "
                    f"{s['value']:.3f} (gap {s['gap']:+.3f} [{s['gap CI low']:+.3f}, "
                    f"{s['gap CI high']:+.3f}])"
                    for s in called
                ],
            )
        )
    else:
        blocks.append(
            (
                "p",
                f"Subgroups: no gap called among {len(estimable)} estimable "
                "groups (see subgroups.csv).",
            )
        )
    return blocks


def model_card(results):
    """The model card of a study, as blocks: ``(kind, content)`` with kind
    ``"h2"``/``"h3"`` (a heading), ``"p"`` (a paragraph), ``"ul"`` (a list of
    items) or ``"table"`` (a list of row dicts); :func:`to_markdown` writes
    them as Markdown, the report as HTML."""
    data = results.data
    counts = {row["split"]: row for row in data.split_rows()}
    blocks = [
        ("h2", "Intended use"),
        (
            "p",
            "For research on chest X-ray classification methods: comparing "
            "models, training recipes and explanations. Not a medical device; "
            "not for diagnosis, triage or treatment decisions.",
        ),
        ("h2", "Data"),
        ("p", f"Source: {data.source}."),
        ("p", f"Labels: {LABEL_ORIGINS.get(data.layout, 'from the data set')}."),
        (
            "table",
            [
                {
                    "split": name,
                    "images": counts[name]["images"],
                    "patients": counts[name]["patients"],
                }
                for name in ("train", "validation", "test")
            ],
        ),
        ("p", "Splits are patient-disjoint (splits.csv lists every image)."),
    ]
    if data.notes:
        blocks.append(("ul", list(data.notes)))
    blocks.append(("h2", "Results"))
    for result in results.classification.values():
        blocks += _task_blocks(result)
    limitations = []
    if data.layout == "synthetic":
        limitations.append(
            "Synthetic images: the figures compare methods; they say nothing of "
            "performance on real radiographs."
        )
    elif data.layout in ("chestxray14", "chexpert", "mimic", "padchest"):
        limitations.append(
            "Report-mined labels are noisy: part of every error rate here is "
            "label noise, and it differs between findings."
        )
    external = getattr(results, "external", None)
    limitations += [
        f"Images at {results.settings.size} px from one data set"
        + (
            "; the external validation section scores them on another."
            if external
            else "; performance on other hospitals' images is unknown."
        ),
        "Intervals are per metric and per group; with many groups, some gap is "
        "called by chance.",
    ]
    blocks += [("h2", "Known limitations"), ("ul", limitations)]
    return blocks


def to_markdown(blocks, title="Model card"):
    """The blocks of :func:`model_card` as Markdown text."""
    lines = [f"# {title}", ""]
    for kind, content in blocks:
        if kind in ("h2", "h3"):
            lines += [f"{'#' * int(kind[1])} {content}", ""]
        elif kind == "p":
            lines += [content, ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in content] + [""]
        else:  # a table
            columns = list(content[0])
            lines.append("| " + " | ".join(columns) + " |")
            lines.append("|" + "---|" * len(columns))
            lines += [
                "| " + " | ".join(str(row[c]) for c in columns) + " |"
                for row in content
            ]
            lines.append("")
    return "\n".join(lines)
