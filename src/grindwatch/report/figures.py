"""Figures of one flagged recording, drawn to read well on screen and on paper.

Every figure uses a white background, dark lines and sequential colour maps whose
lightness rises steadily (``magma_r``: white is low, black is high), so they keep
their meaning when printed in grey. Long signals are drawn as min/max envelopes of
at most a few thousand points, which keeps the report small without hiding spikes.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from grindwatch.explain import RecordingExplanation
    from grindwatch.io import Recording

__all__ = [
    "contribution_heatmaps",
    "feature_contributions",
    "figure_to_data_uri",
    "pyplot",
    "signal_panels",
    "spectrograms",
]

# Matplotlib settings for every report figure: small print-sized fonts, light grid.
STYLE: dict[str, Any] = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "magma_r",
}
HEAT_MAP = "magma_r"
SHADE = "#fdb863"  # flagged windows: light orange, a light grey when printed
SIGNAL = "#1f1f1f"
REFERENCE = "#2166ac"
MAX_PLOT_POINTS = 800
MAX_HEATMAP_COLUMNS = 600


def pyplot():  # noqa: ANN201 - the matplotlib.pyplot module
    """Import pyplot on the Agg backend with the report style applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def _subplots(
    rows: int,
    columns: int,
    size: tuple[float, float],
    margins: tuple[float, float, float, float],
    **options: Any,
):  # noqa: ANN202 - (Figure, 2-D array of Axes)
    """Subplots with fixed (left, right, top, bottom) margins in inches.

    Fixed margins replace a layout engine, which measures every label on each
    draw and made the detail figures about a third slower.
    """
    width, height = size
    left, right, top, bottom = margins
    spacing = {k: options.pop(k) for k in ("hspace", "wspace") if k in options}
    figure, axes = pyplot().subplots(
        rows, columns, figsize=size, squeeze=False, **options
    )
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        **spacing,
    )
    return figure, axes


def _short(name: str, limit: int = 24) -> str:
    """Shorten ``name`` to ``limit`` characters by cutting its middle.

    Channel names often share a long prefix and differ at the end
    ("Grinding spindle current L1" and "... L2"), so both ends are kept.
    """
    if len(name) <= limit:
        return name
    tail = (limit - 1) // 2
    return name[: limit - 1 - tail] + "…" + name[-tail:]


def _text_inches(text: str, points: float) -> float:
    """Return the width of ``text`` in inches, in the report's font at ``points``."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    pyplot()  # the report style names the font
    # At 72 dots per inch one pixel is one point.
    renderer = RendererAgg(10, 10, 72)
    width, _, _ = renderer.get_text_width_height_descent(
        text, FontProperties(size=points), ismath=False
    )
    return width / 72


def _label_margin(labels: list[str], ticks: list[str] | None = None) -> float:
    """Return the left margin in inches for y labels (8 pt) beside y tick labels
    (7 pt). It is at least 1.05 inches, the margin the figures had before."""
    widest = max((_text_inches(label, 8) for label in labels), default=0.0)
    tick_width = max((_text_inches(tick, 7) for tick in ticks or []), default=0.0)
    # Padding: tick marks and the gaps between ticks, labels and the edge.
    padding = 0.25 if ticks else 0.15
    return max(1.05, widest + tick_width + padding)


def figure_to_data_uri(figure, dpi: int = 96) -> str:  # noqa: ANN001
    """Render ``figure`` as a PNG data URI and close it.

    The image is reduced to a 256-colour palette without dithering, which keeps
    the report two to three times smaller. Line plots and the 256-step colour
    maps lose nothing visible.
    """
    import matplotlib.pyplot as plt
    from PIL import Image

    # Drawing the canvas and quantising its pixels skips matplotlib's own PNG
    # encoding, which would only be decoded again here.
    try:
        figure.set_dpi(dpi)
        figure.canvas.draw()
        pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    finally:
        plt.close(figure)
    # Octree quantisation and plain zlib compression ran 6 to 8 times faster than
    # median cut with PNG optimisation on report figures, and gave smaller files.
    palette = Image.fromarray(pixels).quantize(
        colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _time_axis(n_samples: int, sample_rate: float | None) -> tuple[np.ndarray, str]:
    if sample_rate:
        return np.arange(n_samples) / sample_rate, "time (s)"
    return np.arange(n_samples, dtype=np.float64), "sample"


def envelope(values: np.ndarray, max_points: int = MAX_PLOT_POINTS):  # noqa: ANN201
    """Downsample a signal to at most ``max_points`` buckets of (index, min, max).

    Returns the centre index of each bucket and its minimum and maximum; a signal
    already short enough comes back unchanged with min equal to max.
    """
    n = values.size
    if n <= max_points:
        index = np.arange(n, dtype=np.float64)
        return index, values, values
    bucket = int(np.ceil(n / max_points))
    count = int(np.ceil(n / bucket))
    padded = np.pad(values, (0, count * bucket - n), mode="edge").reshape(count, bucket)
    index = np.arange(count) * bucket + (bucket - 1) / 2
    return index, padded.min(axis=1), padded.max(axis=1)


def flagged_spans(starts: np.ndarray, flags: np.ndarray, length: int):  # noqa: ANN201
    """Merge flagged windows into (first sample, past-the-end sample) spans."""
    spans: list[list[int]] = []
    for start in np.sort(starts[flags]):
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], int(start) + length)
        else:
            spans.append([int(start), int(start) + length])
    return [tuple(span) for span in spans]


def _draw_signal(axis, data: np.ndarray, scale: float) -> None:  # noqa: ANN001
    index, low, high = envelope(data)
    if low is high:
        axis.plot(index * scale, data, color=SIGNAL, lw=0.6)
    else:
        axis.fill_between(index * scale, low, high, color=SIGNAL, lw=0.3)


def signal_panels(
    explanation: RecordingExplanation,
    reference: Recording | None,
    max_channels: int = 12,
):  # noqa: ANN201 - a matplotlib Figure
    """Plot each channel over the cycle, flagged windows shaded, beside a reference.

    The right column shows the nearest normal recording on the same y range per
    channel, so a changed amplitude is visible at a glance. At most
    ``max_channels`` channels are drawn, in order of their contribution.
    """
    recording = explanation.recording
    rate = recording.sample_rate
    channels = _channel_order(explanation)[:max_channels]
    columns = 2 if reference is not None else 1
    # The channel name sits left of the y tick labels. Their width is estimated
    # as that of a signed value with five significant digits.
    left = _label_margin(
        [_short(recording.channels[c]) for c in channels], ["\u22121.0000"]
    )
    figure, axes = _subplots(
        len(channels),
        columns,
        (9.5 if columns == 2 else 7.5, 0.75 + 1.0 * len(channels)),
        (left, 0.1, 0.3, 0.45),
        sharex="col",
        hspace=0.22,
        wspace=0.16,
    )
    scale = 1 / rate if rate else 1.0
    spans = flagged_spans(
        explanation.starts, explanation.flags, explanation.window_length
    )
    for row, channel in enumerate(channels):
        axis = axes[row, 0]
        for first, end in spans:
            axis.axvspan(first * scale, end * scale, color=SHADE, alpha=0.55, lw=0)
        _draw_signal(axis, recording.data[channel], scale)
        axis.set_ylabel(
            _short(recording.channels[channel]), rotation=0, ha="right", va="center"
        )
        if reference is not None:
            other = reference.data[
                reference.channels.index(recording.channels[channel])
            ]
            _draw_signal(axes[row, 1], other, scale)
            both = np.concatenate([recording.data[channel], other])
            for side in axes[row]:
                side.set_ylim(float(both.min()), float(both.max()) + 1e-12)
    _, label = _time_axis(1, rate)
    axes[0, 0].set_title(f"{recording.name}: flagged windows shaded")
    axes[-1, 0].set_xlabel(label)
    if reference is not None:
        axes[0, 1].set_title(f"nearest normal recording: {reference.name}")
        axes[-1, 1].set_xlabel(label)
    return figure


def _channel_order(explanation: RecordingExplanation) -> list[int]:
    totals = explanation.contributions.sum(axis=(0, 2))
    return [int(i) for i in np.argsort(-totals, kind="stable")]


def _pool_size(n_columns: int, max_columns: int) -> int:
    """Number of columns that ``_pool_columns`` pools into one."""
    return max(1, int(np.ceil(n_columns / max_columns)))


def _pool_columns(matrix: np.ndarray, max_columns: int) -> np.ndarray:
    """Max-pool columns so at most ``max_columns`` remain (NaN-aware)."""
    n = matrix.shape[1]
    if n <= max_columns:
        return matrix
    bucket = _pool_size(n, max_columns)
    count = int(np.ceil(n / bucket))
    padded = np.pad(matrix, ((0, 0), (0, count * bucket - n)), constant_values=np.nan)
    blocks = padded.reshape(matrix.shape[0], count, bucket)
    finite = np.isfinite(blocks).any(axis=2)
    pooled = np.full((matrix.shape[0], count), np.nan)
    pooled[finite] = np.nanmax(np.where(np.isfinite(blocks), blocks, -np.inf), axis=2)[
        finite
    ]
    return pooled


def contribution_heatmaps(explanation: RecordingExplanation):  # noqa: ANN201
    """Heat maps of the departure from normal by channel and time, and by element.

    Left: channels by time. For the raw front end every sample has its own value,
    averaged where windows overlap. Spectra and features do not resolve time
    within a window, so each column is one window placed at its start time.
    Right (spectra and features only): channels by band or statistic, summed over
    the flagged windows, or the worst window when none is flagged.
    """
    from matplotlib.colors import PowerNorm

    recording = explanation.recording
    rate = recording.sample_rate
    by_element = explanation.axis.name in ("band", "feature")
    figure, axes = _subplots(
        1,
        2 if by_element else 1,
        (9.5, 1.5 + 0.3 * len(recording.channels)),
        (
            _label_margin([_short(c) for c in recording.channels]),
            0.5,
            0.3,
            1.0 if by_element else 0.45,
        ),
        gridspec_kw={"width_ratios": [3, 2]} if by_element else None,
        wspace=0.3,
    )
    scale = 1 / rate if rate else 1.0
    starts = explanation.starts
    if explanation.axis.name == "time step":
        matrix = explanation.channel_by_time()
        column_width = scale
        title = "departure by channel and time"
    else:
        matrix = explanation.channel_by_window()
        # Columns are one hop wide, so each starts where its window starts. Only
        # a last window that ends at the last sample starts earlier than its
        # column, by less than a hop.
        hop = (
            int(starts[1] - starts[0]) if starts.size > 1 else explanation.window_length
        )
        column_width = hop * scale
        title = "departure by channel and window (x: window start)"
    # Pooling pads the last column to a whole bucket, so the image ends past the
    # last sample or window, where that bucket ends.
    pooled = _pool_size(matrix.shape[1], MAX_HEATMAP_COLUMNS)
    n_columns = int(np.ceil(matrix.shape[1] / pooled))
    extent_end = n_columns * pooled * column_width
    matrix = _pool_columns(matrix, MAX_HEATMAP_COLUMNS)
    peak = float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 1.0
    norm = PowerNorm(0.5, vmin=0, vmax=max(peak, 1e-12))
    axis = axes[0, 0]
    image = axis.imshow(
        matrix,
        aspect="auto",
        interpolation="nearest",
        cmap=HEAT_MAP,
        norm=norm,
        extent=(0, extent_end, len(recording.channels) - 0.5, -0.5),
    )
    axis.set_yticks(
        range(len(recording.channels)), [_short(c) for c in recording.channels]
    )
    axis.set_xlim(0, (starts[-1] + explanation.window_length) * scale)
    axis.set_xlabel(_time_axis(1, rate)[1])
    axis.set_title(title)
    axis.grid(False)
    figure.colorbar(image, ax=axis, label="contribution", pad=0.01, fraction=0.04)
    if by_element:
        _element_map(axes[0, 1], explanation, norm_type=PowerNorm)
    return figure


def _element_map(axis, explanation: RecordingExplanation, norm_type) -> None:  # noqa: ANN001
    chosen = (
        explanation.flags
        if explanation.flags.any()
        else (np.arange(explanation.scores.size) == int(np.argmax(explanation.scores)))
    )
    matrix = np.maximum(explanation.contributions[chosen].sum(axis=0), 0)
    image = axis.imshow(
        matrix,
        aspect="auto",
        interpolation="nearest",
        cmap=HEAT_MAP,
        norm=norm_type(0.5, vmin=0, vmax=max(float(matrix.max()), 1e-12)),
    )
    labels = explanation.axis.labels
    step = max(1, int(np.ceil(len(labels) / 16)))
    axis.set_xticks(
        range(0, len(labels), step), labels[::step], rotation=70, ha="right", fontsize=6
    )
    # Same rows as the left panel, whose labels name them.
    axis.set_yticks(range(len(explanation.recording.channels)), [])
    which = "flagged windows" if explanation.flags.any() else "worst window"
    axis.set_title(f"by channel and {explanation.axis.name}, {which}")
    axis.set_xlabel(
        "frequency band" if explanation.axis.name == "band" else "window feature"
    )
    axis.grid(False)
    axis.figure.colorbar(image, ax=axis, label="contribution", pad=0.01, fraction=0.06)


def spectrograms(
    explanation: RecordingExplanation, channel: int, reference: Recording | None
):  # noqa: ANN201
    """Spectrograms of one channel of the recording and of its nearest normal one.

    Both use the same segment length (the model's window, at most 1024 samples),
    the same dB colour range, and flagged windows are outlined on the recording.
    """
    from scipy.signal import spectrogram

    recording = explanation.recording
    rate = recording.sample_rate or 1.0
    segment = int(min(explanation.window_length, 1024, recording.n_samples))
    signals = [(recording.name, recording.data[channel])]
    name = recording.channels[channel]
    if reference is not None:
        signals.append((reference.name, reference.data[reference.channels.index(name)]))
    maps = []
    for title, data in signals:
        # Hop at least half a segment, and more for long signals, so at most about
        # 1500 columns are drawn.
        hop = max(segment // 2, int(np.ceil(data.size / 1500)))
        hop = min(hop, segment)
        frequency, times, power = spectrogram(
            data, fs=rate, nperseg=segment, noverlap=segment - hop, window="hann"
        )
        maps.append((title, frequency, times, 10 * np.log10(power + 1e-20)))
    high = max(float(m[3].max()) for m in maps)
    low = max(min(float(np.percentile(m[3], 2)) for m in maps), high - 80)

    figure, axes = _subplots(
        1, len(maps), (9.5, 2.8), (0.75, 0.8, 0.3, 0.45), sharey=True, wspace=0.06
    )
    for axis, (title, frequency, times, decibels) in zip(axes[0], maps, strict=True):
        # Segments are evenly spaced, so an image with edges half a step out
        # draws the same cells as pcolormesh, faster.
        half = (times[1] - times[0]) / 2 if times.size > 1 else segment / rate / 2
        image = axis.imshow(
            decibels,
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            cmap=HEAT_MAP,
            vmin=low,
            vmax=high,
            extent=(times[0] - half, times[-1] + half, frequency[0], frequency[-1]),
        )
        axis.set_title(f"{title}: {name}")
        axis.set_xlabel("time (s)" if recording.sample_rate else "sample")
        axis.grid(False)
    for first, end in flagged_spans(
        explanation.starts, explanation.flags, explanation.window_length
    ):
        axes[0, 0].axvspan(
            first / rate, end / rate, fill=False, ec="#2166ac", lw=1.2, ls="--"
        )
    axes[0, 0].set_ylabel(
        "frequency (Hz)" if recording.sample_rate else "frequency (cycles per sample)"
    )
    figure.colorbar(
        image, ax=list(axes[0]), label="power (dB)", pad=0.01, fraction=0.03
    )
    return figure


def feature_contributions(
    explanation: RecordingExplanation,
    groups: dict[str, list[int]],
    top: int = 20,
):  # noqa: ANN201
    """Bar charts of a table row's departure: by feature group and top features.

    Left: the share of each group (for example all ``ae_`` features); right: the
    ``top`` features with the largest contribution, labelled with their names.
    """
    plt = pyplot()
    names = explanation.recording.channels
    values = np.maximum(explanation.contributions[0, :, 0], 0)
    total = float(values.sum()) or 1.0
    order = np.argsort(-values, kind="stable")[:top][::-1]
    grouped = len(groups) > 1
    palette = plt.get_cmap("tab10")
    colour_of = {
        index: palette(position % 10)
        for position, members in enumerate(groups.values())
        for index in members
    }

    figure, axes = plt.subplots(
        1,
        2 if grouped else 1,
        figsize=(9.5, 0.9 + 0.17 * len(order)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 3]} if grouped else None,
    )
    bars = axes[0, -1]
    bars.barh(
        range(len(order)),
        values[order] / total,
        color=[colour_of[i] for i in order] if grouped else SIGNAL,
    )
    bars.set_yticks(range(len(order)), [names[i] for i in order], fontsize=6)
    bars.set_xlabel("share of the departure from normal")
    bars.set_title(f"top {len(order)} of {len(names)} features")
    if grouped:
        shares = [values[members].sum() / total for members in groups.values()]
        axis = axes[0, 0]
        axis.barh(
            range(len(groups)),
            shares,
            color=[palette(i % 10) for i in range(len(groups))],
        )
        axis.set_yticks(range(len(groups)), [f"{g}_" for g in groups])
        axis.invert_yaxis()
        axis.set_xlabel("share")
        axis.set_title("by feature group")
    figure.tight_layout()
    return figure
