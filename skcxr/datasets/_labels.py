"""One label space for the public chest X-ray data sets.

Each data set names its findings its own way: ChestX-ray14 ``Effusion``,
CheXpert and MIMIC-CXR ``Pleural Effusion``, PadChest ``pleural effusion`` (and
``loculated pleural effusion``), VinDr-CXR ``Pleural effusion``.
:data:`LABEL_TABLE` maps them onto one set of common names, so that every
loader returns the same columns for the same finding, and data sets can be
pooled (:func:`concat_datasets`) or a model fitted on one scored on another.

The common names are those of ChestX-ray14 (Wang et al. 2017) and of
torchxrayvision's pooled label space (Cohen et al. 2022), so that existing
ChestX-ray14 code keeps its names and the outputs of torchxrayvision's models
line up with the loaders' columns by name; findings ChestX-ray14 lacks take
CheXpert's names (Irvin et al. 2019).

A finding is positive in an image when any of the data set's labels listed for
it is. A data set that does not label a finding gets an unknown (NaN) column
for it, never a column of zeros. Labels listed in :data:`UNMAPPED_LABELS` are
deliberately left out of the table (no common name means the same thing); the
loaders keep them in ``findings`` or ``metadata``.
"""

import difflib
from types import MappingProxyType

__all__ = ["LABEL_TABLE", "UNMAPPED_LABELS", "COMMON_CLASSES", "DATASET_NAMES"]

#: Display name of every data set key of :data:`LABEL_TABLE`.
DATASET_NAMES = MappingProxyType(
    {
        "chestxray14": "ChestX-ray14",
        "nih_google2019": "ChestX-ray14 expert labels (Google 2019)",
        "chexpert": "CheXpert",
        "mimic_cxr": "MIMIC-CXR",
        "padchest": "PadChest",
        "rsna_pneumonia": "RSNA Pneumonia",
        "vindr_cxr": "VinDr-CXR",
        "siim_pneumothorax": "SIIM-ACR Pneumothorax",
    }
)

_CHEXPERT = {  # the CheXpert labeler's 14 observations (also MIMIC-CXR's)
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Effusion": "Pleural Effusion",
    "Enlarged Cardiomediastinum": "Enlarged Cardiomediastinum",
    "Fracture": "Fracture",
    "Lung Lesion": "Lung Lesion",
    "Lung Opacity": "Lung Opacity",
    "No Finding": "No Finding",
    "Pleural Other": "Pleural Other",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Support Devices": "Support Devices",
}
_NIH = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)
_PADCHEST = {
    "Atelectasis": (
        "atelectasis",
        "atelectasis basal",
        "laminar atelectasis",
        "lobar atelectasis",
        "round atelectasis",
        "segmental atelectasis",
        "total atelectasis",
    ),
    "Cardiomegaly": ("cardiomegaly",),
    "Consolidation": ("air bronchogram", "consolidation"),
    "Edema": ("pulmonary edema",),
    "Effusion": (
        "hydropneumothorax",
        "loculated fissural effusion",
        "loculated pleural effusion",
        "pleural effusion",
    ),
    "Emphysema": ("emphysema",),
    "Enlarged Cardiomediastinum": (
        "mediastinal enlargement",
        "superior mediastinal enlargement",
    ),
    "Fibrosis": ("pulmonary fibrosis",),
    "Fracture": (
        "callus rib fracture",
        "clavicle fracture",
        "fracture",
        "humeral fracture",
        "rib fracture",
        "vertebral fracture",
    ),
    "Hernia": ("hiatal hernia",),
    "Infiltration": (
        "air bronchogram",
        "alveolar pattern",
        "consolidation",
        "ground glass pattern",
        "infiltrates",
        "interstitial pattern",
        "reticular interstitial pattern",
        "reticulonodular interstitial pattern",
    ),
    "Mass": ("mass", "mediastinal mass", "pleural mass", "pulmonary mass"),
    "No Finding": ("normal",),
    "Nodule": ("multiple nodules", "nodule"),
    "Nodule/Mass": (
        "mass",
        "mediastinal mass",
        "multiple nodules",
        "nodule",
        "pleural mass",
        "pulmonary mass",
    ),
    "Pleural_Thickening": (
        "apical pleural thickening",
        "calcified pleural thickening",
        "pleural thickening",
    ),
    "Pneumonia": ("atypical pneumonia", "pneumonia"),
    "Pneumothorax": ("hydropneumothorax", "pneumothorax"),
    "Support Devices": (
        "aortic endoprosthesis",
        "artificial aortic heart valve",
        "artificial heart valve",
        "artificial mitral heart valve",
        "catheter",
        "central venous catheter",
        "central venous catheter via jugular vein",
        "central venous catheter via subclavian vein",
        "central venous catheter via umbilical vein",
        "chest drain tube",
        "double J stent",
        "dual chamber device",
        "electrical device",
        "endotracheal tube",
        "gastrostomy tube",
        "nephrostomy tube",
        "NSG tube",
        "osteosynthesis material",
        "pacemaker",
        "reservoir central venous catheter",
        "single chamber device",
        "tracheostomy tube",
        "ventriculoperitoneal drain tube",
    ),
}
_VINDR = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Effusion": "Pleural effusion",
    "Fibrosis": "Pulmonary fibrosis",
    "Infiltration": "Infiltration",
    "Lung Opacity": "Lung Opacity",
    "No Finding": "No finding",
    "Nodule/Mass": "Nodule/Mass",
    "Pleural_Thickening": "Pleural thickening",
    "Pneumothorax": "Pneumothorax",
}
_GOOGLE2019 = {
    "Fracture": "Fracture",
    "Lung Opacity": "Airspace opacity",
    "Nodule/Mass": "Nodule or mass",
    "Pneumothorax": "Pneumothorax",
}


def _build_table():
    table = {}

    def add(common, dataset, names):
        names = (names,) if isinstance(names, str) else tuple(names)
        table.setdefault(common, {})[dataset] = names

    for name in _NIH:
        add(name, "chestxray14", name)
    add("Nodule/Mass", "chestxray14", ("Mass", "Nodule"))
    add("No Finding", "chestxray14", "No Finding")
    for common, name in _GOOGLE2019.items():
        add(common, "nih_google2019", name)
    for common, name in _CHEXPERT.items():
        add(common, "chexpert", name)
        add(common, "mimic_cxr", name)
    for common, names in _PADCHEST.items():
        add(common, "padchest", names)
    # RSNA's positive class "Lung Opacity": opacities suspicious for pneumonia
    add("Lung Opacity", "rsna_pneumonia", "Lung Opacity")
    add("Pneumonia", "rsna_pneumonia", "Lung Opacity")
    add("No Finding", "rsna_pneumonia", "Normal")
    for common, name in _VINDR.items():
        add(common, "vindr_cxr", name)
    add("Pneumothorax", "siim_pneumothorax", "Pneumothorax")
    order = list(DATASET_NAMES)
    return MappingProxyType(
        {
            common: MappingProxyType(
                dict(sorted(table[common].items(), key=lambda kv: order.index(kv[0])))
            )
            for common in sorted(table)
        }
    )


#: Common finding name -> {data set -> the data set's labels for it}.
#:
#: An image has the finding when it has any of the listed labels. Keys of the
#: inner mappings are the data sets of :data:`DATASET_NAMES`.
LABEL_TABLE = _build_table()

#: The common finding names, sorted: the columns ``labels`` can have.
COMMON_CLASSES = tuple(LABEL_TABLE)

#: Data set -> labels that occur in its label files and map to no common name.
UNMAPPED_LABELS = MappingProxyType(
    {
        "chestxray14": (),
        "nih_google2019": (),
        "chexpert": (),
        "mimic_cxr": (),
        "padchest": (
            "",  # an empty entry of a label list, e.g. "['', 'unchanged']"
            "COPD signs",
            "Chilaiditi sign",
            "abnormal foreign body",
            "abscess",
            "adenopathy",
            "air fluid level",
            "air trapping",
            "aortic aneurysm",
            "aortic atheromatosis",
            "aortic button enlargement",
            "aortic elongation",
            "asbestosis signs",
            "ascendent aortic elongation",
            "axial hyperostosis",
            "azygoesophageal recess shift",
            "azygos lobe",
            "blastic bone lesion",
            "bone cement",
            "bone metastasis",
            "breast mass",
            "bronchiectasis",
            "bronchovascular markings",
            "bullas",
            "calcified adenopathy",
            "calcified densities",
            "calcified fibroadenoma",
            "calcified granuloma",
            "calcified mediastinal adenopathy",
            "calcified pleural plaques",
            "cavitation",
            "central vascular redistribution",
            "cervical rib",
            "chronic changes",
            "costochondral junction hypertrophy",
            "costophrenic angle blunting",
            "cyst",
            "dai",
            "descendent aortic elongation",
            "dextrocardia",
            "diaphragmatic eventration",
            "empyema",
            "end on vessel",
            "endoprosthesis",
            "esophagic dilatation",
            "exclude",
            "external foreign body",
            "fibrotic band",
            "fissure thickening",
            "flattened diaphragm",
            "goiter",
            "granuloma",
            "gynecomastia",
            "heart insufficiency",
            "heart valve calcified",
            "hemidiaphragm elevation",
            "hilar congestion",
            "hilar enlargement",
            "humeral prosthesis",
            "hyperinflated lung",
            "hypoexpansion",
            "hypoexpansion basal",
            "increased density",
            "kerley lines",
            "kyphosis",
            "lepidic adenocarcinoma",
            "lipomatosis",
            "lung metastasis",
            "lung vascular paucity",
            "lymphangitis carcinomatosa",
            "lytic bone lesion",
            "major fissure thickening",
            "mammary prosthesis",
            "mastectomy",
            "mediastinal shift",
            "mediastinic lipomatosis",
            "metal",
            "miliary opacities",
            "minor fissure thickening",
            "nipple shadow",
            "non axial articular degenerative changes",
            "obesity",
            "osteopenia",
            "osteoporosis",
            "pectum carinatum",
            "pectum excavatum",
            "pericardial effusion",
            "pleural plaques",
            "pneumomediastinum",
            "pneumoperitoneo",
            "post radiotherapy changes",
            "prosthesis",
            "pseudonodule",
            "pulmonary artery enlargement",
            "pulmonary artery hypertension",
            "pulmonary hypertension",
            "pulmonary venous hypertension",
            "respiratory distress",
            "right sided aortic arch",
            "sclerotic bone lesion",
            "scoliosis",
            "soft tissue mass",
            "sternoclavicular junction hypertrophy",
            "sternotomy",
            "subacromial space narrowing",
            "subcutaneous emphysema",
            "suboptimal study",
            "supra aortic elongation",
            "surgery",
            "surgery breast",
            "surgery heart",
            "surgery humeral",
            "surgery lung",
            "surgery neck",
            "suture material",
            "thoracic cage deformation",
            "tracheal shift",
            "tuberculosis",
            "tuberculosis sequelae",
            "unchanged",
            "vascular hilar enlargement",
            "vascular redistribution",
            "vertebral anterior compression",
            "vertebral compression",
            "vertebral degenerative changes",
            "volume loss",
        ),
        "rsna_pneumonia": ("No Lung Opacity / Not Normal",),
        "vindr_cxr": ("Aortic enlargement", "Calcification", "ILD", "Other lesion"),
        "siim_pneumothorax": (),
    }
)


def source_labels(dataset):
    """Common name -> the labels of ``dataset`` that mean it."""
    return {
        common: names[dataset]
        for common, names in LABEL_TABLE.items()
        if dataset in names
    }


def default_classes(dataset):
    """The common names ``dataset`` labels, sorted, without "No Finding".

    A finding that is the union of others the data set labels on their own
    ("Nodule/Mass" where "Nodule" and "Mass" have columns) is left out too: it
    can be asked for by name.
    """
    own = source_labels(dataset)
    out = []
    for common, names in own.items():
        if common == "No Finding":
            continue
        parts = [c for c in own if c != common and set(own[c]) < set(names)]
        if len(parts) >= 2 and set().union(*(own[c] for c in parts)) == set(names):
            continue
        out.append(common)
    return out


def _aliases():
    out = {}
    for common, by_set in LABEL_TABLE.items():
        for dataset, names in by_set.items():
            for name in names:
                out.setdefault(name.lower(), {}).setdefault(common, []).append(
                    DATASET_NAMES[dataset]
                )
    return out


def resolve_classes(classes, dataset, *, param="classes"):
    """Common names asked for (``None``: the default of ``dataset``), checked."""
    if classes is None:
        return default_classes(dataset)
    if isinstance(classes, str):
        raise ValueError(
            f"{param} must be a list of common finding names, got the string "
            f"{classes!r}; write [{classes!r}]."
        )
    classes = [str(c) for c in classes]
    if not classes:
        raise ValueError(f"{param} must name at least one finding, got [].")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{param} must not repeat a finding, got {classes}.")
    for name in classes:
        if name not in LABEL_TABLE:
            raise ValueError(f"{param}: {_unknown_name_message(name)}")
    return classes


def _unknown_name_message(name):
    aliases = _aliases().get(name.strip().lower())
    if aliases:
        hints = "; ".join(
            f"{name!r} is {' and '.join(sets)}'s label for {common!r}"
            for common, sets in aliases.items()
        )
        return (
            f"{name!r} is not a common finding name; did you mean "
            f"{' or '.join(repr(c) for c in aliases)}? ({hints})"
        )
    lower = {c.lower(): c for c in LABEL_TABLE}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)
    hint = (
        f"did you mean {' or '.join(repr(lower[c]) for c in close)}? " if close else ""
    )
    return (
        f"{name!r} is not a common finding name; {hint}The common names are "
        f"{list(LABEL_TABLE)}."
    )


def render_rst_table():
    """The label table as a reStructuredText list-table (the user guide's)."""
    sets = list(DATASET_NAMES)
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :stub-columns: 1",
        "",
        "   * - Common name",
    ]
    lines += [f"     - {DATASET_NAMES[s]}" for s in sets]
    for common, by_set in LABEL_TABLE.items():
        lines.append(f"   * - {common}")
        for s in sets:
            names = by_set.get(s, ())
            cell = ", ".join(f"``{n}``" for n in names) if names else ""
            lines.append(f"     - {cell}" if cell else "     -")
    return "\n".join(lines) + "\n"
