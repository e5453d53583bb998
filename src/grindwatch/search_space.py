"""The Optuna search space over the whole pipeline, drawn as config overrides.

A trial draws a front end, window length and hop, a detector family and that
family's own settings from ``tune.space`` (see ``grindwatch.tune_config``), and
returns them as dotted config overrides. Optuna parameter names are the space's
names; a family's settings carry the family as prefix (``autoencoder.loss``), and
per-layer settings the layer index (``autoencoder.filters_0``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from grindwatch.exceptions import ConfigError
from grindwatch.tune_config import Range, SearchSpace, Spec

if TYPE_CHECKING:
    import optuna

    from grindwatch.config import Config

logger = logging.getLogger(__name__)

__all__ = [
    "TABLE_FAMILIES",
    "baseline_params",
    "check_space",
    "limit_window_lengths",
    "window_seconds_in_samples",
    "suggest_overrides",
]

TABLE_FAMILIES = ("iforest", "pca", "knn")
_FAMILIES = ("autoencoder", *TABLE_FAMILIES)
_FRONTENDS = ("raw", "spectrum", "features")


# Settings that trials use as numbers, with the other values each one accepts.
_NUMERIC_SETTINGS: dict[str, tuple[Any, ...]] = {
    "window_length": (),
    "hop_fraction": (),
    "n_bands": (),
    "autoencoder.n_layers": (),
    "autoencoder.filters": (),
    "autoencoder.kernel_size": (),
    "autoencoder.stride": (),
    "autoencoder.latent_size": (None,),
    "autoencoder.learning_rate": (),
    "autoencoder.batch_size": (),
    "autoencoder.epochs": (),
    "iforest.n_estimators": (),
    "iforest.max_samples": ("auto",),
    "pca.n_components": (),
    "knn.n_neighbors": (),
}


def _choices(spec: Spec) -> list[Any] | None:
    """Return the values of a categorical or fixed setting, or None for a range."""
    if isinstance(spec, Range):
        return None
    return list(spec) if isinstance(spec, list) else [spec]


def _draw(trial: optuna.Trial, name: str, spec: Spec) -> Any:
    if isinstance(spec, Range):
        if spec.low == spec.high:
            return spec.low
        if spec.is_int:
            return trial.suggest_int(
                name,
                int(spec.low),
                int(spec.high),
                step=int(spec.step or 1),
                log=spec.log,
            )
        return trial.suggest_float(
            name, float(spec.low), float(spec.high), step=spec.step, log=spec.log
        )
    choices = _choices(spec)
    if len(choices) == 1:
        return choices[0]
    return trial.suggest_categorical(name, choices)


def _check_numbers(space: SearchSpace) -> None:
    """Raise unless every numeric setting lists numbers (or its accepted values).

    A text value would otherwise fail every trial that draws it, deep in int() or
    float(), or stop the study before its first trial with a bare ValueError.
    """
    for name, accepted in _NUMERIC_SETTINGS.items():
        section, _, setting = name.rpartition(".")
        spec = getattr(getattr(space, section) if section else space, setting)
        for value in _choices(spec) or []:
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if is_number or any(value is item or value == item for item in accepted):
                continue
            also = "".join(f" or {item!r}" for item in accepted)
            raise ConfigError(
                f"tune.space.{name} has {value!r}, which is not a number; give "
                f"numbers{also}, as a list or a range {{low: ..., high: ...}}"
            )
    # suggest_overrides would raise these to a hop of 1 sample or 1 band unnoticed.
    for name in ("hop_fraction", "n_bands"):
        spec = getattr(space, name)
        low = spec.low if isinstance(spec, Range) else min(_choices(spec))
        if low <= 0:
            raise ConfigError(
                f"tune.space.{name} has {low}, which is not above 0; give values "
                "above 0"
            )


def _edges(spec: Spec) -> list[Any]:
    """Return the values of a setting that bound what trials can draw."""
    if isinstance(spec, Range):
        return [spec.low, spec.high]
    return _choices(spec)


def _detector_section(family: str, name: str, value: Any) -> dict[str, Any]:
    """Build the detector config section that a trial drawing ``value`` would use."""
    if family != "autoencoder":
        return {name: value}
    # Per-layer settings become one-layer lists; other layers keep valid values.
    layer = {"filters": [8], "kernel_sizes": [3], "strides": [1]}
    per_layer = {
        "filters": "filters",
        "kernel_size": "kernel_sizes",
        "stride": "strides",
    }
    if name in per_layer:
        return {**layer, per_layer[name]: [value]}
    if name == "n_layers":
        return {key: entries * int(value) for key, entries in layer.items()}
    return {**layer, name: value}


def _check_detector_values(space: SearchSpace) -> None:
    """Raise ConfigError for a searched detector value that the config rejects.

    Each listed value and both ends of each range are checked, because a value
    such as ``knn.n_neighbors: [0]`` would fail every trial that draws it.
    """
    from pydantic import ValidationError

    from grindwatch.config import DetectorConfig

    families = [str(family) for family in _choices(space.family) or []]
    for family in [family for family in dict.fromkeys(families) if family in _FAMILIES]:
        section_type = DetectorConfig.model_fields[family].annotation
        for name, spec in getattr(space, family):
            for value in _edges(spec):
                if name == "n_layers" and (value < 1 or value != int(value)):
                    raise ConfigError(
                        f"tune.space.autoencoder.n_layers has {value!r}, which is "
                        "invalid; give whole numbers of layers of at least 1"
                    )
                try:
                    section_type.model_validate(_detector_section(family, name, value))
                except ValidationError as error:
                    reason = error.errors()[0]["msg"].removeprefix("Value error, ")
                    raise ConfigError(
                        f"tune.space.{family}.{name} has {value!r}, which is "
                        f"invalid for detector.{family} ({reason}); change "
                        f"tune.space.{family}.{name} to valid values"
                    ) from None


def check_space(space: SearchSpace, kind: str) -> SearchSpace:
    """Validate the space for data of ``kind`` and return the space to search.

    Feature tables have no windows or front end, so only the families that take
    tables remain; the autoencoder is dropped from the family choices.

    Raises
    ------
    ConfigError
        If a family or front end is unknown, no family fits the data, a
        numeric setting lists text, or a searched detector setting has a
        value that the detector config rejects.
    """
    _check_numbers(space)
    families = _choices(space.family)
    if families is None:
        raise ConfigError("tune.space.family must be a list of families, not a range")
    unknown = sorted(set(map(str, families)) - set(_FAMILIES))
    if unknown:
        raise ConfigError(
            f"tune.space.family has unknown families {unknown}; use some of "
            f"{list(_FAMILIES)}"
        )
    _check_detector_values(space)
    frontends = _choices(space.frontend)
    if frontends is None or not set(map(str, frontends)) <= set(_FRONTENDS):
        raise ConfigError(
            f"tune.space.frontend must list front ends from {list(_FRONTENDS)}, got "
            f"{space.frontend!r}"
        )
    if kind != "table":
        return space

    table_families = [family for family in families if family in TABLE_FAMILIES]
    if not table_families:
        raise ConfigError(
            f"feature tables need a detector family from {list(TABLE_FAMILIES)}, but "
            f"tune.space.family is {families}; add one of them"
        )
    return space.model_copy(update={"family": table_families, "frontend": "raw"})


def window_seconds_in_samples(
    space: SearchSpace, sample_rate: float | None
) -> SearchSpace:
    """Return the space with ``window_seconds`` turned into ``window_length``.

    Each length becomes the nearest whole number of samples at ``sample_rate``;
    choices that meet at one number of samples are searched once. Without
    ``window_seconds``, this returns the space itself.

    Raises
    ------
    ConfigError
        If the recordings have no sample rate, or a length is under one sample.
    """
    spec = space.window_seconds
    if spec is None:
        return space
    if sample_rate is None:
        raise ConfigError(
            "tune.space.window_seconds needs the recordings' sample rate, and they "
            "have none; set data.sample_rate, or search tune.space.window_length "
            "in samples"
        )

    from grindwatch.config import whole_samples

    def samples(seconds: Any) -> int:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ConfigError(
                f"tune.space.window_seconds has {seconds!r}; give window lengths "
                "as numbers of seconds, such as [0.5, 1, 2]"
            )
        return whole_samples("tune.space.window_seconds", seconds, sample_rate)

    if isinstance(spec, Range):
        step = None if spec.step is None else samples(spec.step)
        lengths: Spec = Range(
            low=samples(spec.low), high=samples(spec.high), log=spec.log, step=step
        )
    else:
        lengths = sorted({samples(seconds) for seconds in _choices(spec)})
    logger.info(
        "tune.space.window_seconds %s is window_length %s at %g samples/s",
        spec,
        lengths,
        sample_rate,
    )
    return space.model_copy(update={"window_length": lengths, "window_seconds": None})


def limit_window_lengths(space: SearchSpace, max_length: int) -> SearchSpace:
    """Drop window lengths above ``max_length`` samples.

    ``max_length`` is the longest window that both the fitting and the held-out
    part contain: the shorter of their longest pieces.

    Raises
    ------
    ConfigError
        If every window length is too long.
    """
    spec = space.window_length
    if isinstance(spec, Range):
        if spec.low > max_length:
            raise ConfigError(
                f"tune.space.window_length starts at {spec.low} samples, but the "
                f"training or held-out part has no piece longer than {max_length} "
                "samples; search shorter windows"
            )
        high = min(spec.high, max_length)
        return space.model_copy(
            update={
                "window_length": Range(
                    low=spec.low, high=high, log=spec.log, step=spec.step
                )
            }
        )

    lengths = _choices(spec)
    usable = [length for length in lengths if int(length) <= max_length]
    if not usable:
        raise ConfigError(
            f"every window length in tune.space.window_length {lengths} is longer "
            f"than the longest piece ({max_length} samples) that the training and "
            "the held-out part both have; search shorter windows, or hold out whole "
            "recordings "
            "(tune.holdout: recordings)"
        )
    if len(usable) < len(lengths):
        logger.warning(
            "window lengths %s are longer than the longest piece (%d samples) that "
            "the training and the held-out part both have, and are left out of the "
            "search",
            [length for length in lengths if int(length) > max_length],
            max_length,
        )
    return space.model_copy(update={"window_length": usable})


def _autoencoder(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    settings = space.autoencoder
    depth = int(_draw(trial, "autoencoder.n_layers", settings.n_layers))
    filters = [
        int(_draw(trial, f"autoencoder.filters_{i}", settings.filters))
        for i in range(depth)
    ]
    kernels = [
        int(_draw(trial, f"autoencoder.kernel_size_{i}", settings.kernel_size))
        for i in range(depth)
    ]
    stride = int(_draw(trial, "autoencoder.stride", settings.stride))
    latent = _draw(trial, "autoencoder.latent_size", settings.latent_size)
    prefix = "detector.autoencoder."
    return {
        prefix + "filters": filters,
        prefix + "kernel_sizes": kernels,
        prefix + "strides": [stride] * depth,
        prefix + "latent_size": None if latent is None else int(latent),
        prefix + "loss": _draw(trial, "autoencoder.loss", settings.loss),
        prefix + "learning_rate": float(
            _draw(trial, "autoencoder.learning_rate", settings.learning_rate)
        ),
        prefix + "batch_size": int(
            _draw(trial, "autoencoder.batch_size", settings.batch_size)
        ),
        prefix + "epochs": int(_draw(trial, "autoencoder.epochs", settings.epochs)),
    }


def _family_settings(
    trial: optuna.Trial, space: SearchSpace, family: str
) -> dict[str, Any]:
    if family == "autoencoder":
        return _autoencoder(trial, space)
    section = getattr(space, family)
    return {
        f"detector.{family}.{name}": _draw(trial, f"{family}.{name}", spec)
        for name, spec in section
    }


def suggest_overrides(
    trial: optuna.Trial, space: SearchSpace, kind: str
) -> dict[str, Any]:
    """Draw one pipeline variant and return it as dotted config overrides.

    ``space`` is the result of ``check_space`` (and ``limit_window_lengths``).
    The spectrum's band count is capped at half the window length.
    """
    overrides: dict[str, Any] = {}
    if kind != "table":
        frontend = _draw(trial, "frontend", space.frontend)
        length = int(_draw(trial, "window_length", space.window_length))
        hop_fraction = float(_draw(trial, "hop_fraction", space.hop_fraction))
        overrides["frontend.kind"] = frontend
        overrides["windows.length"] = length
        overrides["windows.hop"] = max(1, int(round(length * hop_fraction)))
        if frontend == "spectrum":
            bands = int(_draw(trial, "n_bands", space.n_bands))
            overrides["frontend.n_bands"] = max(1, min(bands, length // 2))
    else:
        # Table rows are features already; the pipeline applies no front end.
        overrides["frontend.kind"] = "raw"

    family = _draw(trial, "family", space.family)
    overrides["detector.family"] = family
    overrides.update(_family_settings(trial, space, family))
    return overrides


class _Draw:
    """Trial parameters that reproduce a configuration, and the values that the
    search space cannot draw."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.outside: list[str] = []

    def fixed(self, name: str, spec: Spec, value: Any) -> None:
        """Record ``value`` as the parameter ``name``, or note why it cannot be."""
        if isinstance(spec, Range):
            if value is None or not spec.low <= value <= spec.high:
                self.outside.append(
                    f"{name}={value!r} lies outside {spec.low} to {spec.high}"
                )
            elif spec.low != spec.high:
                self.params[name] = value
            return
        choices = _choices(spec)
        if value not in choices:
            self.outside.append(f"{name}={value!r} is not one of {choices}")
        elif len(choices) > 1:
            self.params[name] = value


def _autoencoder_params(draw: _Draw, space: SearchSpace, config: Config) -> None:
    settings, chosen = space.autoencoder, config.detector.autoencoder
    if len(set(chosen.strides)) != 1:
        draw.outside.append(f"strides {chosen.strides} differ between layers")
    draw.fixed("autoencoder.n_layers", settings.n_layers, len(chosen.filters))
    for i, (filters, kernel) in enumerate(
        zip(chosen.filters, chosen.kernel_sizes, strict=True)
    ):
        draw.fixed(f"autoencoder.filters_{i}", settings.filters, filters)
        draw.fixed(f"autoencoder.kernel_size_{i}", settings.kernel_size, kernel)
    draw.fixed("autoencoder.stride", settings.stride, chosen.strides[0])
    for name in ("latent_size", "loss", "learning_rate", "batch_size", "epochs"):
        spec, value = getattr(settings, name), getattr(chosen, name)
        draw.fixed(f"autoencoder.{name}", spec, value)


def baseline_params(
    config: Config, space: SearchSpace, kind: str
) -> tuple[dict[str, Any] | None, str]:
    """Return the trial parameters that reproduce ``config``'s own pipeline.

    A study tries that pipeline first, so that the chosen variant scores at least
    as well on the objective as the settings the user started from. Returns None
    and the reason when ``space`` (after ``check_space``) cannot draw it.
    """
    draw = _Draw()
    if kind != "table":
        length = config.windows.length
        draw.fixed("frontend", space.frontend, config.frontend.kind)
        draw.fixed("window_length", space.window_length, length)
        draw.fixed("hop_fraction", space.hop_fraction, config.hop / length)
        if config.frontend.kind == "spectrum":
            draw.fixed("n_bands", space.n_bands, config.frontend.n_bands)
    family = config.detector.family
    draw.fixed("family", space.family, family)
    if family == "autoencoder":
        _autoencoder_params(draw, space, config)
    else:
        chosen = getattr(config.detector, family)
        for name, spec in getattr(space, family):
            draw.fixed(f"{family}.{name}", spec, getattr(chosen, name))
    if draw.outside:
        return None, "; ".join(draw.outside)
    return draw.params, "the configured pipeline"
