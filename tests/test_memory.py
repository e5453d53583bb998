"""glibc's malloc thresholds, raised once per process for the autoencoder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = """
import resource
import numpy as np
from grindwatch.detectors.autoencoder import AutoencoderDetector
X = np.random.default_rng(0).standard_normal((256, 4, 1024)).astype(np.float32)
detector = AutoencoderDetector(epochs=1, batch_size=64)
detector.fit(X)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    detector.anomaly_score(X)
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
from grindwatch._memory import keep_freed_memory
print(keep_freed_memory(), after - before)
"""


def _probe(setting: str | None) -> tuple[bool, int]:
    env = dict(os.environ)
    env.pop("GRINDWATCH_KEEP_FREED_MEMORY", None)
    if setting is not None:
        env["GRINDWATCH_KEEP_FREED_MEMORY"] = setting
    output = subprocess.run(
        [sys.executable, "-c", _PROBE],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.split()
    return output[-2] == "True", int(output[-1])


def _glibc() -> bool:
    import ctypes

    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


@pytest.mark.skipif(not _glibc(), reason="the thresholds are glibc's")
def test_scoring_again_reuses_freed_buffers():
    kept, faults = _probe(None)

    assert kept
    # Without the setting, each pass faulted in about 70 pages per 4 x 1024
    # window on the development machine (glibc 2.36); with it, almost none.
    assert faults < 3 * 256 * 2


def test_setting_off_leaves_malloc_alone():
    kept, _ = _probe("0")

    assert not kept
