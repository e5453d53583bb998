"""Signal processing: windowing, scaling and front ends."""

from grindwatch.signals.frontends import FRONTENDS, FrontEnd
from grindwatch.signals.scaling import ChannelScaler
from grindwatch.signals.windows import WindowSet, make_windows, window_starts

__all__ = [
    "FRONTENDS",
    "ChannelScaler",
    "FrontEnd",
    "WindowSet",
    "make_windows",
    "window_starts",
]
