"""What a study runs with: sizes, epochs, backbone, device; from defaults, a TOML
file and command-line flags, in that order of precedence."""

import dataclasses
import os
import tomllib
from dataclasses import dataclass

__all__ = ["MASKS", "StudySettings"]

# input size each backbone family was pretrained at; a real data set is studied
# at this size unless --size says otherwise (Kermany et al. 2018 used 224 px)
_NATIVE_SIZE = {"inception_v3": 299}
_DEFAULT_NATIVE_SIZE = 224
# how the study can mask the lungs before every task (--mask)
MASKS = ("none", "otsu", "segmenter", "clahe+segmenter")
# settings that must lie in a range (checked when read from a file or a flag)
_FRACTIONS = ("test_fraction", "validation_fraction", "target_sensitivity")
_AT_LEAST_ONE = (
    "n_samples",
    "size",
    "head_epochs",
    "finetune_epochs",
    "scratch_epochs",
    "anomaly_epochs",
    "segmenter_epochs",
    "batch_size",
    "n_resamples",
    "min_class_images",
)
_AT_LEAST_ZERO = ("max_images", "n_explained", "n_scored_explanations", "difficulty")


@dataclass
class StudySettings:
    """Every setting of ``skcxr study``; the report records the values used.

    The defaults are the synthetic study (1,200 images of 64 px, about 3
    minutes on two CPU cores). :meth:`quick` is a one-minute smoke run, and
    :meth:`for_real_data` switches to the backbone's native input size.

    Examples
    --------
    >>> from skcxr.study._settings import StudySettings
    >>> StudySettings.quick().size
    48
    >>> StudySettings().for_real_data().size
    224
    """

    n_samples: int = 1200
    size: int = 64
    difficulty: float = 0.5
    backbone: str = "efficientnet_lite0"
    # the pretrained backbone's weights: "imagenet", a state-dict file (the
    # torchvision, torchxrayvision or CheXNet layout) or "xrv:<name>"
    weights: str = "imagenet"
    head_epochs: int = 30
    finetune_epochs: int = 8
    scratch_epochs: int = 20
    anomaly_epochs: int = 30
    # what the images go through before every task: "none", "otsu" (Otsu's
    # threshold), "segmenter" (a U-Net trained on the training split's lung
    # masks) or "clahe+segmenter" (CLAHE first); the report compares them
    mask: str = "none"
    # benchmarks/bench_segmenter.py: 5 epochs over 200 images reached Dice 0.974
    segmenter_epochs: int = 10
    batch_size: int = 32
    device: str = "auto"
    engine: str = "torch"
    # "fp32"; "int8" / "bf16" with an engine (int8 quantisation is calibrated on
    # training images: the report then shows what it costs)
    precision: str = "fp32"
    max_images: int = 0
    # "auto": read a --data folder batch by batch from the files when its float32
    # images would exceed 25% of the available memory; "always" / "never"
    streaming: str = "auto"
    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    # a class with fewer images in some split is not estimated (single-label
    # tasks); a finding with fewer test positives is reported as not estimable
    min_class_images: int = 5
    # the sensitivity of "any finding" the operating threshold reaches on the
    # validation split (then reported on test)
    target_sensitivity: float = 0.95
    n_resamples: int = 1000
    n_explained: int = 4
    n_scored_explanations: int = 16
    # a folder: every trained network writes its TensorBoard run there
    # (<log_dir>/<task>/<network>); "" writes none
    log_dir: str = ""

    @classmethod
    def quick(cls):
        """A smoke run: few, small images and very few epochs."""
        return cls(
            n_samples=150,
            size=48,
            head_epochs=8,
            finetune_epochs=2,
            scratch_epochs=3,
            anomaly_epochs=3,
            segmenter_epochs=3,
            n_resamples=200,
            n_explained=2,
            n_scored_explanations=6,
        )

    def for_real_data(self):
        """The same settings at the backbone's native input size."""
        native = _NATIVE_SIZE.get(self.backbone, _DEFAULT_NATIVE_SIZE)
        return dataclasses.replace(self, size=native)

    def updated(self, values, *, source):
        """A copy with ``values`` (a dict) applied; unknown names are an error.

        Parameters
        ----------
        values : dict
            Setting name -> value; ``None`` values are ignored.
        source : str
            Where the values come from, for error messages.
        """
        known = {f.name: f.type for f in dataclasses.fields(self)}
        changes = {}
        for name, value in values.items():
            if value is None:
                continue
            if name not in known:
                raise ValueError(
                    f"{source}: unknown setting {name!r}; known settings: "
                    f"{sorted(known)}."
                )
            expected = known[name]
            if expected is float and isinstance(value, int):
                value = float(value)
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ValueError(
                    f"{source}: setting {name!r} must be {expected.__name__}, got "
                    f"{value!r}."
                )
            _check_range(name, value, source)
            changes[name] = value
        if changes.get("precision", "fp32") not in ("fp32", "bf16", "int8"):
            raise ValueError(
                f"{source}: setting 'precision' must be 'fp32', 'bf16' or 'int8', "
                f"got {changes['precision']!r}."
            )
        if changes.get("streaming", "auto") not in ("auto", "always", "never"):
            raise ValueError(
                f"{source}: setting 'streaming' must be 'auto', 'always' or "
                f"'never', got {changes['streaming']!r}."
            )
        if changes.get("mask", "none") not in MASKS:
            raise ValueError(
                f"{source}: setting 'mask' must be one of {list(MASKS)}, got "
                f"{changes['mask']!r}."
            )
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_toml(cls, path, base=None):
        """Settings from a TOML file of ``name = value`` lines over ``base``."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"settings file not found: {path}")
        with open(path, "rb") as f:
            try:
                values = tomllib.load(f)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"{path} is not valid TOML: {exc}") from exc
        return (base or cls()).updated(values, source=path)

    def to_toml(self):
        """The settings as TOML text, readable by :meth:`from_toml`."""
        lines = []
        for name, value in dataclasses.asdict(self).items():
            text = f'"{value}"' if isinstance(value, str) else repr(value)
            lines.append(f"{name} = {text}")
        return "\n".join(lines) + "\n"

    def as_rows(self):
        """One ``{"setting", "value"}`` row per setting, for the report."""
        return [
            {"setting": name, "value": value}
            for name, value in dataclasses.asdict(self).items()
        ]


def _check_range(name, value, source):
    """A ``ValueError`` naming the setting when its value is out of range."""
    if name in _FRACTIONS and not 0 < value < 1:
        raise ValueError(
            f"{source}: setting {name!r} is a fraction, between 0 and 1 "
            f"(exclusive); got {value!r}."
        )
    if name in _AT_LEAST_ONE and value < 1:
        raise ValueError(
            f"{source}: setting {name!r} must be at least 1; got {value!r}."
        )
    if name in _AT_LEAST_ZERO and value < 0:
        raise ValueError(
            f"{source}: setting {name!r} must not be negative; got {value!r}."
        )
