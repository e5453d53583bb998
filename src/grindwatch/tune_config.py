"""Settings of ``grindwatch tune``: the study, its objective and its search space.

Each searched setting of the space is written in one of three forms:

- a list: the choices of a categorical parameter, e.g. ``[raw, spectrum]``;
- a range ``{low: 1.0e-4, high: 1.0e-2, log: true}``: an integer parameter when
  ``low``, ``high`` (and ``step``) are integers, else a float parameter;
- a single value: fixed, not searched.

Narrow the space by shortening lists or ranges, widen it by lengthening them.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from grindwatch.io.options import BOOL_WORDS

__all__ = [
    "Range",
    "SearchSpace",
    "Section",
    "TuneConfig",
    "check_alias",
    "check_model_name",
]

Scalar = str | int | float | bool | None

# The model registry's rules in MLflow 3.17 (mlflow/utils/validation.py), checked
# with the settings so that a bad name stops train or tune before fitting, not
# after all trials.
_ALIAS_PATTERN = re.compile(r"[\w\-]{1,255}")
# MLflow reserves these: ``models:/NAME@v3`` means version 3, and ``@latest`` the
# newest version.
_VERSION_ALIAS = re.compile(r"[vV]\d+")


def check_model_name(name: str | None) -> str | None:
    """Return ``name`` if MLflow accepts it as a registered model's name.

    Raises
    ------
    ValueError
        If the name is blank, contains ``/`` or ``:``, is ``.`` or starts
        with ``..``.
    """
    if name is None:
        return None
    if not name.strip():
        raise ValueError("the registered model name is blank; give a name")
    if "/" in name or ":" in name:
        raise ValueError(
            f"the registered model name {name!r} contains '/' or ':', which MLflow "
            "rejects; use letters, digits, dots, dashes or underscores"
        )
    if name == "." or name.startswith(".."):
        raise ValueError(
            f"the registered model name {name!r} is '.' or starts with '..', "
            "which MLflow rejects; choose another name"
        )
    return name


def check_alias(value: str) -> str:
    """Return ``value`` when MLflow's model registry takes it as an alias.

    Raises
    ------
    ValueError
        For characters other than letters, digits, ``_`` and ``-``, and for the
        aliases that MLflow reserves (``latest``, ``v`` and a number).
    """
    if not _ALIAS_PATTERN.fullmatch(value):
        raise ValueError(
            f"the alias {value!r} is invalid: MLflow accepts 1 to 255 letters, "
            "digits, underscores (_) and dashes (-)"
        )
    if value.lower() == "latest" or _VERSION_ALIAS.fullmatch(value):
        raise ValueError(
            f"the alias {value!r} is reserved by MLflow for a model version "
            "('latest' or v followed by a number); choose another, such as "
            "champion"
        )
    return value


def _accepts_bool(annotation: Any) -> bool:
    """Return whether a field's type admits True and False.

    That is bool, Any, a union containing one of them, or a Literal listing a
    bool value, such as ``Literal["auto", True, False]``.
    """
    if annotation is bool or annotation is Any:
        return True
    arguments = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return any(isinstance(value, bool) for value in arguments)
    return any(_accepts_bool(arg) for arg in arguments)


_BASE_60 = re.compile(r"^[-+]?[0-9]+(?::[0-9]+)+(?:\.[0-9]*)?$")


def _is_number(annotation: Any) -> bool:
    """Return whether a field's type is a number, or a number or None."""
    if annotation in (int, float):
        return True
    arguments = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return union and bool(arguments) and all(arg in (int, float) for arg in arguments)


def _is_bool_choice(annotation: Any) -> bool:
    """Return whether a field's type is a Literal that lists True or False."""
    return typing.get_origin(annotation) is Literal and any(
        isinstance(value, bool) for value in typing.get_args(annotation)
    )


def _is_text(annotation: Any) -> bool:
    """Return whether a field's type is text: str, or a list of str, or either
    or None."""
    if annotation is str:
        return True
    arguments = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) is list:
        return arguments == [str]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return bool(arguments) and all(_is_text(arg) for arg in arguments)
    return False


def _is_list(annotation: Any) -> bool:
    """Return whether a field's type is a list, or a list or None."""
    if typing.get_origin(annotation) is list:
        return True
    arguments = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return union and len(arguments) == 1 and _is_list(arguments[0])


class Section(BaseModel):
    """A configuration section: unknown keys, true/false for numbers, values
    other than text for names, and infinite or NaN numbers are errors.

    In its lax mode pydantic reads YAML's ``true`` as 1 for an int or float
    field, so ``length: true`` would pass as a window of one sample. YAML's
    ``.inf`` passes a ``gt=0`` bound, and a sample rate of inf would give windows
    that all start at 0 s.
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _check_value_types(cls, value: Any, info: ValidationInfo) -> Any:
        values = value if isinstance(value, list) else [value]
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, str) and field is not None and _is_list(field.annotation):
            raise ValueError(
                f"expected a list, not the text {value!r}; write a YAML list, as in "
                "[a, b] (--set 'KEY=[a, b]' on the command line)"
            )
        if field is not None and _is_text(field.annotation):
            other = [item for item in values if not isinstance(item, str)]
            if value is not None and other:
                # The config loader reads true, 010 (10) and 2024-01-01 as a
                # boolean, a number and a date, but on, no and 12:30 as text.
                raise ValueError(
                    f"expected text, not {other[0]!r} ({type(other[0]).__name__}); "
                    "YAML reads unquoted true, 010 or 2024-01-01 as a boolean, "
                    'number or date, so quote the value ("010" in a file, '
                    "--set 'KEY=\"010\"' on the command line)"
                )
        if isinstance(value, str) and field is not None:
            if _BASE_60.match(value.strip()) and _is_number(field.annotation):
                # YAML 1.1 read 1:30 as the base-60 number 90; the loader does not.
                raise ValueError(
                    f"expected a number, not the text {value!r}; write the value "
                    "as one number, such as 90 where 1:30 meant 1 min 30 s"
                )
            if _is_bool_choice(field.annotation):
                # pydantic reads yes and off as booleans for a bool field, but
                # not for a Literal that lists True and False.
                value = BOOL_WORDS.get(value.strip().lower(), value)
        if any(isinstance(item, bool) for item in values):
            if field is not None and not _accepts_bool(field.annotation):
                raise ValueError(f"expected a number, not a boolean ({value!r})")
        return value


class Range(Section):
    """A numeric range searched by Optuna; ``log`` samples on a log scale."""

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low={self.low} is above high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("a range cannot have both log and step")
        return self

    @property
    def is_int(self) -> bool:
        return all(
            isinstance(value, int) and not isinstance(value, bool)
            for value in (self.low, self.high, self.step or 1)
        )


# Union order matters: pydantic tries a list, then a range mapping, then a value.
Spec = list[Scalar] | Range | Scalar


def _not_empty(values: dict[str, Any]) -> None:
    for name, spec in values.items():
        if isinstance(spec, list) and not spec:
            raise ValueError(f"{name} has no choices; give at least one value")


class _Space(Section):
    @model_validator(mode="after")
    def _choices_given(self) -> _Space:
        _not_empty(dict(self))
        return self


class AutoencoderSpace(_Space):
    """Autoencoder settings searched; filters and kernel size are drawn per layer."""

    n_layers: Spec = Field(default_factory=lambda: Range(low=1, high=3))
    filters: Spec = Field(default_factory=lambda: [8, 16, 32])
    kernel_size: Spec = Field(default_factory=lambda: [3, 5, 7, 9])
    stride: Spec = Field(default_factory=lambda: [1, 2])
    latent_size: Spec = Field(default_factory=lambda: [4, 8, 16, 32])
    loss: Spec = Field(default_factory=lambda: ["mse", "mae", "huber"])
    learning_rate: Spec = Field(
        default_factory=lambda: Range(low=1e-4, high=1e-2, log=True)
    )
    batch_size: Spec = Field(default_factory=lambda: [32, 64, 128])
    epochs: Spec = Field(default_factory=lambda: Range(low=5, high=30))


class IForestSpace(_Space):
    n_estimators: Spec = Field(
        default_factory=lambda: Range(low=50, high=300, log=True)
    )
    max_samples: Spec = Field(default_factory=lambda: ["auto", 128, 512])


class PCASpace(_Space):
    n_components: Spec = Field(default_factory=lambda: Range(low=0.5, high=0.99))


class KNNSpace(_Space):
    n_neighbors: Spec = Field(default_factory=lambda: Range(low=1, high=30, log=True))


class SearchSpace(_Space):
    """The pipeline variants a study draws from.

    ``window_length`` counts samples. ``window_seconds``, when set, replaces it
    with lengths in seconds, turned into samples at the training recordings'
    rate, so that trials record ``window_length`` in samples either way.
    ``hop_fraction`` is the hop as a share of the window length. ``n_bands`` applies
    to the spectrum front end and is capped at half the window length. Feature
    tables search only the detector families that take tables (iforest, pca, knn).
    """

    frontend: Spec = Field(default_factory=lambda: ["raw", "spectrum"])
    window_length: Spec = Field(default_factory=lambda: [256, 512, 1024, 2048])
    window_seconds: Spec | None = None
    hop_fraction: Spec = Field(default_factory=lambda: [0.5, 1.0])
    n_bands: Spec = Field(default_factory=lambda: [16, 32, 64])
    family: Spec = Field(
        default_factory=lambda: ["autoencoder", "iforest", "pca", "knn"]
    )
    autoencoder: AutoencoderSpace = Field(default_factory=AutoencoderSpace)
    iforest: IForestSpace = Field(default_factory=IForestSpace)
    pca: PCASpace = Field(default_factory=PCASpace)
    knn: KNNSpace = Field(default_factory=KNNSpace)


class TuneConfig(Section):
    """Settings of a tuning study.

    ``storage`` is an SQLAlchemy URL; None means an SQLite file ``optuna.db`` in the
    working folder. ``timeout`` is in seconds and stops the starting of new trials in
    this process. ``objective`` ``recurring_f1``,
    ``injected_auc_specificity`` and ``injected_auc`` are label-free (see
    ``grindwatch.objective``); ``labeled_auc`` lets labels drive the search and must
    be asked for explicitly. ``recurring_share`` is the share of fitting windows
    that carry recurring anomalies of the types ``recurring`` (see
    ``grindwatch.signals.injection.inject_recurring``); 0 fits on clean windows.
    ``holdout`` ``auto`` holds out whole recordings when there are at least 10,
    else the last ``holdout_fraction`` of each recording. Feature tables always
    hold out whole rows.
    """

    n_trials: int = Field(default=30, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    jobs: int = Field(default=1, ge=1)
    storage: str | None = None
    study_name: str = Field(default="grindwatch", min_length=1)
    objective: Literal[
        "recurring_f1",
        "injected_auc_specificity",
        "injected_auc",
        "labeled_auc",
    ] = "recurring_f1"
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    holdout: Literal["auto", "recordings", "segments"] = "auto"
    holdout_fraction: float = Field(default=0.2, gt=0, lt=0.8)
    injections: list[str] | None = None
    recurring: list[str] | None = None
    recurring_share: float = Field(default=0.01, ge=0, lt=0.5)
    max_fit_windows: int = Field(default=4000, ge=10)
    max_holdout_windows: int = Field(default=1000, ge=10)
    # Try the configured pipeline (the settings outside ``tune``) as the first
    # trial when the space can draw it. The chosen variant then scores at least as
    # well on the objective as the starting point, unless that trial fails or is
    # pruned.
    baseline: bool = True
    # PyTorch threads per trial; None shares the CPU cores among the jobs. Small
    # networks often run fastest on one thread.
    torch_threads: int | None = Field(default=None, ge=1)
    registered_model: str | None = None
    alias: str = Field(default="champion", min_length=1)
    space: SearchSpace = Field(default_factory=SearchSpace)

    @field_validator("registered_model")
    @classmethod
    def _check_registered_model(cls, value: str | None) -> str | None:
        return check_model_name(value)

    @field_validator("alias")
    @classmethod
    def _check_alias(cls, value: str) -> str:
        return check_alias(value)
