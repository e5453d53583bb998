"""Typed, validated configuration: a YAML file, CLI options, or Python.

Every setting of a run lives here, so the resolved configuration logged with a run
and stored in its model repeats the run exactly.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from grindwatch.exceptions import ConfigError
from grindwatch.io.options import (
    channel_problems,
    encoding_problems,
    time_column_problems,
    timezone_problems,
)
from grindwatch.tune_config import Section, TuneConfig, check_alias, check_model_name

__all__ = ["Config", "as_config", "load_config", "validate_config", "yaml_value"]

logger = logging.getLogger(__name__)


class DataConfig(Section):
    """Location of the recordings and the options for reading them."""

    paths: list[str] = Field(default_factory=list)
    kind: Literal["signals", "table"] = "signals"
    delimiter: str | None = None
    decimal: str | None = None
    # Text encoding of CSV files, as a Python codec name such as latin-1.
    encoding: str = "utf-8"
    hdf5_key: str | None = None
    channels: list[str] | None = None
    label_columns: list[str] = Field(
        default_factory=lambda: [
            "anomaly",
            "label",
            "labels",
            "is_anomaly",
            "target",
            "changepoint",
        ]
    )
    # The CSV or Parquet column that contains time, when its name is not recognised.
    time_column: str | None = None
    # The column of dates when each timestamp is split into a date column and a
    # time-of-day column (time_column, or found by name). With None, a pair is
    # found by the column names.
    date_column: str | None = None
    # The IANA time zone (Europe/Berlin) of date-times written without one, so
    # that a daylight-saving switch inside a file is no gap or backward step.
    # None reads them as they are.
    timezone: str | None = None
    # Read no time column: rows are samples in file order at sample_rate, and
    # time-like columns are left out. For a time column that is damaged or
    # repeats times while the rows are in order.
    ignore_time: bool = False
    sample_rate: float | None = Field(default=None, gt=0)
    id_column: str | None = None
    nan_policy: Literal["raise", "interpolate"] = "raise"
    strict: bool = False
    # Leave out channels (feature columns) that repeat an earlier one exactly in
    # all training data, or keep them.
    duplicate_channels: Literal["drop", "keep"] = "drop"
    # Keep constant or clipped channels with a warning, or reject the file.
    constant_policy: Literal["warn", "raise"] = "warn"
    clipping_policy: Literal["warn", "raise"] = "warn"
    # Resample a recording whose rate differs from the rate most files have (or the
    # model's) instead of rejecting it.
    resample: bool = False
    # Resample every recording to this rate (samples/s) when read; for multi-rate
    # cycle folders in "resample" mode, None means the lowest stream rate.
    resample_rate: float | None = Field(default=None, gt=0)
    # Multi-rate cycle folders: one common rate ("resample") or per-frame statistics
    # at each stream's own rate ("features"); stream_modes sets single streams apart.
    cycle_mode: Literal["resample", "features"] = "resample"
    stream_modes: dict[str, Literal["resample", "features"]] = Field(
        default_factory=dict
    )
    frame_seconds: float = Field(default=0.01, gt=0)
    frame_hop_seconds: float | None = Field(default=None, gt=0)
    frame_bands: int = Field(default=4, ge=0)
    tdms_group: str | None = None
    mat_variable: str | None = None
    # Headerless binary files (.bin, .raw): NumPy dtype such as "<i2" and channels.
    raw_dtype: str | None = None
    raw_channels: int = Field(default=1, ge=1)
    # Keep only recordings whose metadata (e.g. meta.json's tool) has these values.
    match: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # Score one large file in chunks of this many samples, with bounded memory.
    chunk_samples: int | None = Field(default=None, ge=1)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        _raise_first(encoding_problems(value))
        return value

    @field_validator("channels")
    @classmethod
    def _distinct_channels(cls, value: list[str] | None) -> list[str] | None:
        # An empty list would select nothing, and code that tests the list for
        # truth would use all channels instead, so it is rejected too.
        _raise_first(channel_problems(value, "data.channels unset"))
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        _raise_first(timezone_problems(value))
        return value

    @model_validator(mode="after")
    def _time_settings_agree(self) -> DataConfig:
        _raise_first(
            time_column_problems(
                self.ignore_time, self.time_column, self.date_column, self.timezone
            )
        )
        if not self.ignore_time:
            return self
        if self.sample_rate is None:
            raise ValueError(
                "ignore_time needs sample_rate, because the rows then carry no "
                "time; set data.sample_rate in samples per second"
            )
        return self


class WindowConfig(Section):
    """Window length and hop, in samples or in seconds.

    The hop defaults to the length (no overlap). ``seconds`` and ``hop_seconds``
    give the length and the hop in seconds instead, so that one setting suits
    recordings at 10 Hz and at 50 kHz alike. Training turns them into samples at
    the training recordings' sample rate (``Config.windows_in_samples``), and the
    trained model keeps the samples.
    """

    length: int = Field(default=1024, ge=1)
    hop: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)
    hop_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_unit(self) -> WindowConfig:
        # A length equal to the default may be the default itself, as in a
        # config written back after its window was set in seconds.
        default_length = WindowConfig.model_fields["length"].default
        if self.seconds is not None and self.length != default_length:
            raise ValueError(
                f"length ({self.length} samples) and seconds ({self.seconds:g} s) "
                "are both set; set one of them"
            )
        if self.hop is not None and self.hop_seconds is not None:
            raise ValueError(
                f"hop ({self.hop} samples) and hop_seconds ({self.hop_seconds:g} s) "
                "are both set; set one of them"
            )
        return self


class ScalingConfig(Section):
    method: Literal["robust", "standard", "none"] = "robust"


class FrontendConfig(Section):
    """The transform from a window to detector input. Feature tables skip it."""

    # Spectra by default: vibration, AE and current faults show as changed frequency
    # content, which raw-waveform reconstruction error misses on the gearbox data.
    kind: Literal["raw", "spectrum", "features"] = "spectrum"
    n_bands: int = Field(default=32, ge=1)


# One entry per layer, each a count of at least 1.
_PerLayer = list[Annotated[int, Field(ge=1)]]


class AutoencoderConfig(Section):
    filters: _PerLayer = Field(default_factory=lambda: [16, 32])
    kernel_sizes: _PerLayer = Field(default_factory=lambda: [7, 5])
    strides: _PerLayer = Field(default_factory=lambda: [2, 2])
    latent_size: int | None = Field(default=16, ge=1)
    loss: Literal["mse", "mae", "huber"] = "mse"
    learning_rate: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=5, ge=1)
    validation_fraction: float = Field(default=0.1, ge=0, lt=0.5)

    @model_validator(mode="after")
    def _same_depth(self) -> AutoencoderConfig:
        depths = {len(self.filters), len(self.kernel_sizes), len(self.strides)}
        if len(depths) != 1 or 0 in depths:
            raise ValueError(
                "filters, kernel_sizes and strides need one entry per layer each, got "
                f"{self.filters}, {self.kernel_sizes}, {self.strides}"
            )
        return self


class IForestConfig(Section):
    n_estimators: int = Field(default=200, ge=1)
    max_samples: int | Literal["auto"] = "auto"

    @field_validator("max_samples")
    @classmethod
    def _positive_count(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(
                f"{value!r} is invalid; use 'auto' or a number of windows per "
                "tree of at least 1"
            )
        return value


class PCAConfig(Section):
    # A share of the variance to keep, or a number of components.
    n_components: float | int = 0.9

    @field_validator("n_components")
    @classmethod
    def _share_or_count(cls, value: float | int) -> float | int:
        share_ok = isinstance(value, float) and 0 < value < 1
        count_ok = isinstance(value, int) and value >= 1
        if not (share_ok or count_ok):
            raise ValueError(
                f"{value!r} is invalid; use a variance share between 0 and 1 "
                "(such as 0.9) or a number of components of at least 1"
            )
        return value


class KNNConfig(Section):
    n_neighbors: int = Field(default=5, ge=1)


class DetectorConfig(Section):
    """The detector family to train, and the settings of each family."""

    family: Literal["autoencoder", "iforest", "pca", "knn"] = "autoencoder"
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    iforest: IForestConfig = Field(default_factory=IForestConfig)
    pca: PCAConfig = Field(default_factory=PCAConfig)
    knn: KNNConfig = Field(default_factory=KNNConfig)

    def params(self) -> dict[str, Any]:
        """Constructor arguments of the chosen family's detector."""
        return getattr(self, self.family).model_dump()


class ThresholdConfig(Section):
    method: Literal["gmm", "percentile", "mad"] = "gmm"
    max_components: int = Field(default=6, ge=1, le=20)
    min_separation: float = Field(default=2.0, gt=0)
    percentile: float = Field(default=99.0, ge=0, le=100)
    mad_k: float = Field(default=3.0, gt=0)
    log_scores: Literal["auto", True, False] = "auto"
    # Factor on the cut, a safety margin for non-negative scores (1 = none).
    margin: float = Field(default=1.0, gt=0)


class AggregateConfig(Section):
    """The reduction of window scores to a recording score: max, mean or a quantile.

    The 0.9 quantile flags a recording when about a tenth of its windows score high,
    so one stray window in a long normal cycle does not flag it.
    """

    method: Literal["max", "mean", "quantile"] = "quantile"
    quantile: float = Field(default=0.9, ge=0, le=1)


class CycleConfig(Section):
    """The cycle profile check (``grindwatch.cycles``) of whole signal recordings.

    It compares each recording's levels, activities and length with those of the
    training recordings, and runs when training has at least ``min_recordings``
    recordings: fewer give no reliable spread. A recording is flagged when its
    window scores or its profile are.
    """

    enabled: bool = True
    min_recordings: int = Field(default=20, ge=3)


class TrackingConfig(Section):
    """MLflow settings. ``uri`` None means MLFLOW_TRACKING_URI, else ./mlflow.db."""

    enabled: bool = True
    uri: str | None = None
    experiment: str = "grindwatch"
    run_name: str | None = None
    log_model: bool = True
    registered_model: str | None = None
    # Alias set on the version that registered_model registers, so that
    # models:/NAME@ALIAS names the newest trained model.
    alias: str | None = None

    @field_validator("registered_model")
    @classmethod
    def _check_registered_model(cls, value: str | None) -> str | None:
        return check_model_name(value)

    @field_validator("alias")
    @classmethod
    def _check_alias(cls, value: str | None) -> str | None:
        return None if value is None else check_alias(value)

    @model_validator(mode="after")
    def _check_alias_has_model(self) -> TrackingConfig:
        if self.alias is not None and self.registered_model is None:
            raise ValueError(
                f"the alias {self.alias!r} needs a registered model to point at; "
                "set tracking.registered_model (--register NAME) too"
            )
        return self


class Config(Section):
    """All settings of a grindwatch run."""

    data: DataConfig = Field(default_factory=DataConfig)
    windows: WindowConfig = Field(default_factory=WindowConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    frontend: FrontendConfig = Field(default_factory=FrontendConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    aggregate: AggregateConfig = Field(default_factory=AggregateConfig)
    cycle: CycleConfig = Field(default_factory=CycleConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    seed: int = Field(default=0, ge=0)

    @property
    def hop(self) -> int:
        return self.windows.hop or self.windows.length

    def windows_in_samples(self, sample_rate: float | None, kind: str) -> Config:
        """Return a copy with ``windows.seconds`` and ``hop_seconds`` in samples.

        Each becomes the nearest whole number of samples at ``sample_rate``, and
        the copy has no settings in seconds left, so that a trained model and a
        tuning trial read their windows from ``length`` and ``hop`` alone. A
        feature table has no windows, so for ``kind`` "table" both are dropped.
        Without settings in seconds, this returns the config itself.

        Raises
        ------
        ConfigError
            If a setting in seconds needs a sample rate and the recordings have
            none, or comes to less than one sample.
        """
        windows = self.windows
        if windows.seconds is None and windows.hop_seconds is None:
            return self
        resolved: dict[str, Any] = {"seconds": None, "hop_seconds": None}
        if kind != "table":
            for name, target in (("seconds", "length"), ("hop_seconds", "hop")):
                seconds = getattr(windows, name)
                if seconds is not None:
                    resolved[target] = _samples(f"windows.{name}", seconds, sample_rate)
            logger.info(
                "windows of %d samples, hop %d, at %g samples/s",
                resolved.get("length", windows.length),
                resolved.get(
                    "hop", windows.hop or resolved.get("length", windows.length)
                ),
                sample_rate,
            )
        tree = self.model_dump()
        tree["windows"].update(resolved)
        return validate_config(tree, "windows")

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """Return a copy with dotted keys set, e.g. ``{"windows.length": 512}``.

        A window length or hop set in one unit replaces the same setting in the
        other unit: ``windows.length`` clears ``windows.seconds``, and
        ``windows.seconds`` puts ``windows.length`` back to its default.
        """
        if not isinstance(overrides, dict):
            raise TypeError(
                "overrides must be a dict of dotted settings such as "
                f'{{"windows.length": 512}}, not {type(overrides).__name__}'
            )
        overrides = _expand_sections(overrides)
        set_keys = {key for key, value in overrides.items() if value is not None}
        for pair in _SAME_SETTING:
            if set(pair) <= set_keys:
                raise ConfigError(
                    f"{pair[0]} and {pair[1]} both set the window "
                    f"{'length' if 'length' in pair[0] else 'hop'}; set one of them"
                )
        tree = self.model_dump()
        for pair in _SAME_SETTING:
            for key, other in (pair, pair[::-1]):
                if key in set_keys:
                    section, name = other.split(".")
                    tree[section][name] = WindowConfig.model_fields[name].default
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = tree
            *parents, leaf = dotted.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown setting {dotted!r}")
                node = node[part]
            # A mapping setting such as data.match takes new keys:
            # data.match.tool=X sets its key "tool".
            if leaf not in node and not _is_mapping_setting(parents):
                raise ConfigError(
                    f"unknown setting {dotted!r}; settings here are {sorted(node)}"
                )
            node[leaf] = value
        return validate_config(tree, "overrides")

    def to_yaml(self) -> str:
        return yaml.dump(
            self.model_dump(mode="json"), Dumper=_QuotingDumper, sort_keys=False
        )

    def flat(self) -> dict[str, Any]:
        """Dotted key to value, for logging as MLflow parameters."""
        out: dict[str, Any] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(f"{prefix}.{key}" if prefix else key, value)
            else:
                out[prefix] = node

        walk("", self.model_dump(mode="json"))
        return out


def _expand_sections(overrides: dict[str, Any]) -> dict[str, Any]:
    """Turn a mapping given for a section into one dotted key per setting.

    ``{"windows": {"hop": 128}}`` becomes ``{"windows.hop": 128}``, so that it
    sets the hop and keeps the section's other settings, as a config file's
    section does, instead of putting them back to their defaults. Mapping
    settings such as ``data.match`` keep their mapping as their value.
    """
    expanded: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if isinstance(value, dict) and _is_section(dotted.split(".")):
            nested = {f"{dotted}.{key}": item for key, item in value.items()}
            expanded.update(_expand_sections(nested))
        else:
            expanded[dotted] = value
    return expanded


def _annotation_at(parts: list[str]) -> Any:
    """Return the type annotation of the setting or section at the dotted path
    ``parts``, or None when no such path exists in Config."""
    annotation: Any = Config
    for part in parts:
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        field = annotation.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
    return annotation


def _is_section(parts: list[str]) -> bool:
    """Tell whether the dotted path ``parts`` names a section of settings, such
    as ``windows`` or ``detector.autoencoder``."""
    annotation = _annotation_at(parts)
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_mapping_setting(parts: list[str]) -> bool:
    """Tell whether the dotted path ``parts`` names a setting whose value is a
    mapping of free keys, such as ``data.match``, not a section of settings."""
    return get_origin(_annotation_at(parts)) is dict


# The same window setting in samples and in seconds.
_SAME_SETTING = (
    ("windows.length", "windows.seconds"),
    ("windows.hop", "windows.hop_seconds"),
)


def _samples(name: str, seconds: float, sample_rate: float | None) -> int:
    """Return ``seconds`` as the nearest whole number of samples at ``sample_rate``."""
    if sample_rate is None:
        raise ConfigError(
            f"{name} is {seconds:g} s, but the recordings have no sample rate to "
            "count samples with; set data.sample_rate, or give the window in "
            "samples (windows.length, windows.hop)"
        )
    return whole_samples(name, seconds, sample_rate)


def whole_samples(name: str, seconds: float, sample_rate: float) -> int:
    """Return ``seconds`` as the nearest whole number of samples, at least one.

    Raises
    ------
    ConfigError
        If ``seconds`` comes to less than one sample. The message names the
        setting ``name``.
    """
    # Halves round up: Python's round() would make 2.5 samples 2.
    samples = math.floor(seconds * sample_rate + 0.5)
    if samples < 1:
        raise ConfigError(
            f"{name} is {seconds:g} s, less than one sample at {sample_rate:g} "
            f"samples/s; use at least {1 / sample_rate:g} s"
        )
    return samples


def _raise_first(problems: Iterator[str]) -> None:
    """Raise the first problem as the ValueError that pydantic reports."""
    problem = next(problems, None)
    if problem is not None:
        raise ValueError(problem)


def validate_config(tree: dict[str, Any], source: str) -> Config:
    """Validate a settings tree, raising ConfigError that names ``source``."""
    try:
        return Config.model_validate(tree)
    except ValidationError as error:
        descriptions = [_describe(item) for item in _merged_unions(error.errors())]
        problems = "; ".join(dict.fromkeys(descriptions))
        raise ConfigError(f"invalid configuration in {source}: {problems}") from None


# Members of a scalar union such as data.match's str | int | float | bool, which
# pydantic names as the last part of an error's location.
_SCALAR_MEMBERS = frozenset({"str", "int", "float", "bool"})


def _merged_unions(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace the one error per union member that pydantic gives for a value
    that fits none of text, number and boolean with one error for the value.

    Errors for the members of a smaller union, such as ``n_components``'s
    float | int, lose the member from their location, so that equal messages
    (``expected a number, not the text 'abc'``) are shown once.
    """
    members: dict[tuple, set] = {}
    for item in items:
        loc = tuple(item["loc"])
        if len(loc) > 1:
            members.setdefault(loc[:-1], set()).add(loc[-1])
    merged = []
    for item in items:
        loc = tuple(item["loc"])
        if len(loc) > 1 and members[loc[:-1]] == _SCALAR_MEMBERS:
            value = item.get("input")
            item = {
                **item,
                "loc": loc[:-1],
                "type": "scalar_union",
                "msg": f"expected text, a number or a boolean, not {value!r} "
                f"({type(value).__name__})",
            }
        elif (
            len(loc) > 1
            and 1 < len(members[loc[:-1]])
            and (members[loc[:-1]] <= _SCALAR_MEMBERS)
        ):
            item = {**item, "loc": loc[:-1]}
        merged.append(item)
    return merged


def _describe(item: dict[str, Any]) -> str:
    """Format one validation error as ``dotted.key: message``.

    An unknown key gets the list of keys valid in its section.
    """
    where = ".".join(map(str, item["loc"]))
    # Pydantic prefixes the text of a validator's ValueError with its type.
    message = item["msg"].removeprefix("Value error, ")
    value = item.get("input")
    if item["type"] in ("float_parsing", "int_parsing") and isinstance(value, str):
        # Pydantic's own message does not show the value.
        message = (
            f"expected a number, not the text {value!r}; write the number alone, "
            "without a unit or a thousands separator"
        )
    if item["type"] == "extra_forbidden":
        section: Any = Config
        for part in item["loc"][:-1]:
            field = section.model_fields.get(part) if section else None
            annotation = field.annotation if field else None
            section = annotation if isinstance(annotation, type) else None
        if section is not None and issubclass(section, BaseModel):
            message = (
                f"unknown setting; settings here are {sorted(section.model_fields)}"
            )
    return f"{where}: {message}"


def _yaml_text(path: Path, raw: bytes) -> str:
    """Decode a config file: UTF-8, or UTF-16 with its byte order mark, as
    PowerShell's ``>`` writes it."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset "
            f"{error.start}); save it as UTF-8, or write a new one with "
            "'grindwatch config > FILE'"
        ) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that reads integers, booleans and colons as YAML 1.2 does,
    and rejects a key given twice in one mapping, which plain YAML loading
    resolves silently by keeping the last.

    PyYAML reads YAML 1.1, where ``010`` is octal 8, ``1:30`` is the base-60
    number 90, and ``on``, ``off``, ``yes`` and ``no`` are booleans. Here ``010``
    is decimal 10, ``1:30`` is text, and only ``true`` and ``false`` (in any of
    YAML's three cases) are booleans, so a channel named ``on`` stays text.
    Boolean settings still take ``yes`` or ``off``, because pydantic reads such
    text as a boolean. ``0x10`` (16) and ``0b101`` (5) stay numbers.
    """

    def construct_yaml_int(self, node):  # noqa: ANN001, ANN201
        text = self.construct_scalar(node).replace("_", "")
        if text.lstrip("+-").isdigit():
            return int(text, 10)
        return super().construct_yaml_int(node)

    def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201, FBT002
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} appears twice; keep one",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_BOOL_TAG = "tag:yaml.org,2002:bool"
# PyYAML's YAML 1.1 patterns less octal, base-60 and the booleans other than true
# and false. A leading zero (010) is decimal, as in YAML 1.2.
_INT = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?[0-9][0-9_]*|[-+]?0x[0-9a-fA-F_]+)$")
# Exponents as in YAML 1.2: 1e3 and 1.5e-3 are numbers, where YAML 1.1 needs a
# dot and a signed exponent (1.0e+3).
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")

_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag not in (_INT_TAG, _FLOAT_TAG, _BOOL_TAG)
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(_BOOL_TAG, _BOOL, list("tTfF"))
_UniqueKeyLoader.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
_UniqueKeyLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))
_UniqueKeyLoader.add_constructor(_INT_TAG, _UniqueKeyLoader.construct_yaml_int)


class _QuotingDumper(yaml.SafeDumper):
    """A YAML dumper that quotes text which YAML 1.1 or ``_UniqueKeyLoader``
    would read as another type, such as ``on`` and ``1e3``, so that both read
    the written file back as it was."""


_QuotingDumper.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


def yaml_value(text: str) -> Any:
    """Read one YAML value, such as that of ``--set key=value``, as config files
    are read: ``010`` is 10 and ``on`` is text (see ``_UniqueKeyLoader``)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def load_config(path: str | Path | None = None) -> Config:
    """Read a YAML config file; missing settings keep their defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        tree = yaml.load(_yaml_text(path, raw), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None)
        if mark is not None and problem:
            reason = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
        else:
            reason = " ".join(str(error).split())
        fix = ""
        if problem and "'\\t'" in problem:
            fix = "; replace the tab with spaces, because YAML rejects tabs there"
        raise ConfigError(f"{path}: is not valid YAML ({reason}){fix}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(tree)}")
    return validate_config(tree, str(path))


def as_config(config: Config | Mapping[str, Any] | str | os.PathLike | None) -> Config:
    """Convert ``config``, in any form that the Python API accepts, to a Config.

    None gives the defaults, a mapping is applied as dotted overrides on them
    (``{"windows.length": 512}``), and a str or path is read as a YAML file.

    Raises
    ------
    TypeError
        If ``config`` is of another type.
    """
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return Config().with_overrides(dict(config))
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise TypeError(
        f"config must be a grindwatch.Config, a dict of dotted settings such as "
        f'{{"windows.length": 512}}, or the path of a YAML file, not '
        f"{type(config).__name__}"
    )
