"""Run configuration: nested dataclasses, presets in YAML, and ``key.path=value`` overrides.

Example: ``olr run --preset cpu --set siamese.optim.lr=3e-4`` starts from the ``cpu`` preset and
changes one value. The resolved configuration of every run is written to ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from olr.errors import OlrError
from olr.models.classifier import ClassifierConfig
from olr.models.decoder import DecoderConfig
from olr.models.siamese import SiameseConfig

PRESETS = ("smoke", "demo", "cpu", "paper")
DATASETS = ("celeba", "folder", "synthetic")
TARGET_MODES = ("occlusion", "temperature", "hard")


@dataclass
class DataConfig:
    """Source of the images and labels, and how they are split.

    Attributes:
        dataset: ``celeba``, ``folder`` (images plus a CSV of labels) or ``synthetic`` (built in).
        data_root: the dataset folder; unused for ``synthetic``.
        labels_csv: for ``folder``, the label CSV (default ``<data_root>/labels.csv``).
        image_size: side of the square images the models see, in pixels.
        labels: label names to keep, in order; None keeps all but ``drop_labels``.
        drop_labels: labels removed by default; the CelebA crop cuts off most necks.
        max_images: keep only the first N images (by id order) for quick trials; None keeps all.
        on_bad_image: ``error`` stops before training and lists every bad file or row; ``skip``
            drops them and reports the count.
        split: ``random``, ``person`` (no person in two splits, from identity_CelebA.txt) or
            ``official`` (list_eval_partition.txt).
        test_fraction: share of all images held out for test; 0.05 as in Karatsiolis and
            Kamilaris (190,000 of about 200,000 CelebA images for training).
        val_fraction: share of the remaining images used for validation (checkpoint choice).
        synthetic_images: number of images the synthetic dataset draws.
        synthetic_flip_rate: probability that each synthetic label is flipped, to test whether the
            embeddings refuse wrong labels.
        prepare_workers: processes that decode images into the cache.
        loader_workers: DataLoader worker processes; 0 reads the memory-mapped cache in the
            training process, which is fastest on a 2-core CPU.
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    labels_csv: str | None = None
    image_size: int = 64
    labels: list[str] | None = None
    drop_labels: list[str] = field(default_factory=lambda: ["Wearing_Necklace", "Wearing_Necktie"])
    max_images: int | None = None
    on_bad_image: str = "error"
    split: str = "random"
    test_fraction: float = 0.05
    val_fraction: float = 0.05
    synthetic_images: int = 4000
    synthetic_flip_rate: float = 0.05
    prepare_workers: int = 2
    loader_workers: int = 0


@dataclass
class OptimConfig:
    """Optimizer and schedule of one trained stage.

    Attributes:
        epochs: passes over the training split (for the Siamese stage, one pass is N / 2 pairs).
        batch_size: images per batch (for the Siamese stage, pairs per batch).
        lr: peak learning rate of Adam (RMSprop for the decoder).
        weight_decay: L2 penalty.
        warmup_steps: linear learning-rate warm-up, which keeps the first large gradients from
            pushing the label layer into the all-zero state.
        grad_clip: gradient-norm clip; 0 disables it.
        cosine: decay the learning rate along a half cosine to 5% of its peak by the last step.
    """

    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 0.0
    cosine: bool = True


@dataclass
class TrainerConfig:
    """Lightning Trainer placement; the same run goes from one CPU to several GPU nodes.

    Attributes:
        accelerator: ``auto``, ``cpu``, ``gpu`` (``cuda``) or ``mps``.
        devices: number of devices or ``auto``.
        num_nodes: machines in a multi-node DDP run.
        strategy: ``auto`` picks DDP for several devices.
        precision: ``32-true``, ``bf16-mixed`` or ``16-mixed``.
        log_every_n_steps: how often the progress line and logged metrics update.
    """

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10


@dataclass
class ClassifierStage:
    """The teacher classifier and its training."""

    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class SiameseStage:
    """The Siamese embedding model and its training.

    Attributes:
        target: ``occlusion`` (the teacher on occluded images, the method's default),
            ``temperature`` (sigmoid(logit / T) on unoccluded images) or ``hard`` (y(a) * y(b)).
        temperature: T for the ``temperature`` target.
        occlusion_min, occlusion_max: rectangle side bounds as fractions of the image side.
        occlusion_fill: ``black``, ``mean`` or ``noise``.
        collapse_fraction: stop when at least this share of label vectors is exactly zero at the
            end of an epoch, because such a model predicts zero for every pair.
    """

    model: SiameseConfig = field(default_factory=SiameseConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(warmup_steps=100, grad_clip=1.0))
    target: str = "occlusion"
    temperature: float = 4.0
    occlusion_min: float = 0.33
    occlusion_max: float = 0.66
    occlusion_fill: str = "black"
    collapse_fraction: float = 0.999


@dataclass
class ProbeConfig:
    """Linear probe: one linear layer from L*k numbers to L sigmoid outputs.

    Attributes:
        l2: candidate L2 penalties; the one with the best validation accuracy is kept.
        max_iter: L-BFGS iterations per fit.
    """

    l2: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2])
    max_iter: int = 200


@dataclass
class AnalysisConfig:
    """Analyses of the test embeddings.

    Attributes:
        pca_label: the label whose vectors get the PCA figure; Mouth_Slightly_Open, the label
            Karatsiolis and Kamilaris analyse.
        pca_components: explained-variance ratios reported.
        pca_images: images shown along the first component.
        disagreement_examples: images in the disagreement figure.
    """

    pca_label: str = "Mouth_Slightly_Open"
    pca_components: int = 5
    pca_images: int = 10
    disagreement_examples: int = 16


@dataclass
class DecoderStage:
    """The reconstruction decoder (trained on frozen embeddings) and the autoencoder reference.

    Attributes:
        model: decoder widths.
        optim: RMSprop at 1e-4 by default.
        alpha: weight of the SSIM term; Karatsiolis and Kamilaris use 0.5.
        autoencoder: also train an autoencoder with the same bottleneck as a reference.
        enabled: train the decoder and run the edits at all.
    """

    model: DecoderConfig = field(default_factory=DecoderConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, batch_size=64))
    alpha: float = 0.5
    autoencoder: bool = True
    enabled: bool = True


@dataclass
class EditingConfig:
    """Measured attribute edits.

    Attributes:
        num_images: test images per label and direction.
        scales: sample scale factors compared.
    """

    num_images: int = 32
    scales: list[float] = field(default_factory=lambda: [0.5, 1.0, 1.5, 2.0])


@dataclass
class RunConfig:
    """Everything one ``olr run`` needs."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    classifier: ClassifierStage = field(default_factory=ClassifierStage)
    siamese: SiameseStage = field(default_factory=SiameseStage)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    decoder: DecoderStage = field(default_factory=DecoderStage)
    editing: EditingConfig = field(default_factory=EditingConfig)


def _convert(value: Any, hint: Any, path: str) -> Any:
    """Check ``value`` against the type ``hint`` and build nested dataclasses."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise OlrError(f"config key {path!r} must be a mapping, got {value!r}")
        return from_dict(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, path)
            except OlrError as error:
                errors.append(str(error))
        raise OlrError(errors[0])
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise OlrError(f"config key {path!r} must be a list, got {value!r}")
        (item_hint, *_) = typing.get_args(hint) or (Any,)
        items = [_convert(item, item_hint, f"{path}[]") for item in value]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise OlrError(
            f"config key {path!r} must be {hint.__name__}, got {value!r} ({type(value).__name__})"
        )
    return value


def from_dict(cls: type, values: dict, path: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict; unknown keys raise OlrError naming the key."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f" under {path!r}" if path else ""
        raise OlrError(
            f"unknown config key {unknown[0]!r}{where}; valid keys: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _convert(value, hints[name], f"{path}.{name}" if path else name)
    return cls(**kwargs)


def to_dict(config: Any) -> dict:
    """Return a plain nested dict of a config dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def merge(base: dict, update: dict) -> dict:
    """Return ``base`` with ``update`` merged in recursively (update wins)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def preset_dict(name: str) -> dict:
    """Return the preset ``name`` (``smoke``, ``cpu`` or ``paper``) as a nested dict."""
    if name not in PRESETS:
        raise OlrError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    text = resources.files("olr").joinpath("presets", f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def parse_override(text: str) -> dict:
    """Turn ``a.b.c=value`` into ``{"a": {"b": {"c": value}}}``; the value is read as YAML."""
    if "=" not in text:
        raise OlrError(
            f"override {text!r} must look like key.path=value, e.g. siamese.optim.lr=3e-4"
        )
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, str):
        # YAML reads 3e-4 as a string; numbers in scientific notation are meant as floats.
        try:
            value = float(value)
        except ValueError:
            pass
    nested: dict = value
    for part in reversed(key.strip().split(".")):
        if not part:
            raise OlrError(f"override {text!r} has an empty key part")
        nested = {part: nested}
    return nested


def load_yaml(path: Path) -> dict:
    """Read a YAML config file into a dict, raising OlrError with the path when it is invalid."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as error:
        raise OlrError(f"config file not found: {path}") from error
    except yaml.YAMLError as error:
        raise OlrError(f"config file {path} is not valid YAML: {error}") from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise OlrError(f"config file {path} must contain a mapping at the top level")
    return values


def resolve_config(
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: dict | None = None,
) -> RunConfig:
    """Combine defaults, a preset, a YAML file and overrides, in that order of precedence.

    Args:
        preset: preset name or None for the plain defaults.
        config_file: optional YAML file with a nested mapping of config keys.
        overrides: nested dict of values that win over everything else.

    Returns:
        The validated RunConfig.
    """
    values = to_dict(RunConfig())
    if preset:
        values = merge(values, preset_dict(preset))
    if config_file:
        values = merge(values, load_yaml(config_file))
    if overrides:
        values = merge(values, overrides)
    config = from_dict(RunConfig, values)
    validate(config)
    return config


def validate(config: RunConfig) -> None:
    """Raise OlrError naming the key when a value is out of its allowed set or range."""
    checks = [
        (config.data.dataset in DATASETS, "data.dataset", DATASETS),
        (config.data.on_bad_image in ("error", "skip"), "data.on_bad_image", ("error", "skip")),
        (
            config.data.split in ("random", "person", "official"),
            "data.split",
            ("random", "person", "official"),
        ),
        (config.siamese.target in TARGET_MODES, "siamese.target", TARGET_MODES),
    ]
    for ok, key, allowed in checks:
        if not ok:
            raise OlrError(f"config key {key!r} must be one of {', '.join(allowed)}")
    siamese = config.siamese
    if siamese.occlusion_fill not in ("black", "mean", "noise"):
        raise OlrError("config key 'siamese.occlusion_fill' must be one of black, mean, noise")
    if not 0.0 < siamese.occlusion_min <= siamese.occlusion_max <= 1.0:
        raise OlrError(
            "siamese.occlusion_min and siamese.occlusion_max must satisfy 0 < min <= max <= 1, "
            f"got {siamese.occlusion_min} and {siamese.occlusion_max}"
        )
    if siamese.temperature <= 0:
        raise OlrError(f"siamese.temperature must be positive, got {siamese.temperature}")
    if config.data.image_size < 16:
        raise OlrError(f"data.image_size must be at least 16 pixels, got {config.data.image_size}")
    if config.data.dataset != "synthetic" and not config.data.data_root:
        raise OlrError(f"--data-root is required for dataset {config.data.dataset!r}")
    if not 0 < config.data.test_fraction < 1 or not 0 <= config.data.val_fraction < 1:
        raise OlrError("data.test_fraction must be in (0, 1) and data.val_fraction in [0, 1)")
    validate_counts(config)


def validate_counts(config: RunConfig) -> None:
    """Raise OlrError naming the key when a count or learning rate is not positive.

    With ``epochs=-1`` Lightning trains without end and with 0 it writes no checkpoint. Both
    would fail only after the images are decoded, so they are rejected here instead.

    Args:
        config: the resolved configuration.

    Raises:
        OlrError: naming the first key whose value is out of range.
    """
    counts = {"siamese.model.dim": config.siamese.model.dim}
    for stage in ("classifier", "siamese", "decoder"):
        optim = getattr(config, stage).optim
        counts[f"{stage}.optim.epochs"] = optim.epochs
        counts[f"{stage}.optim.batch_size"] = optim.batch_size
        if not optim.lr > 0:
            raise OlrError(f"{stage}.optim.lr must be positive, got {optim.lr}")
    if config.data.max_images is not None:
        if config.data.dataset == "synthetic":
            raise OlrError(
                "--max-images applies to the celeba and folder datasets; for synthetic data "
                "set the count with --set data.synthetic_images=N"
            )
        counts["data.max_images (--max-images)"] = config.data.max_images
    for key, value in counts.items():
        if value < 1:
            raise OlrError(f"{key} must be at least 1, got {value}")


def write_yaml(values: dict, path: Path) -> None:
    """Write ``values`` as YAML to ``path`` through a temporary file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(values, sort_keys=False))
    tmp.replace(path)
