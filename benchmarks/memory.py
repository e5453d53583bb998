"""Peak memory of one stage, run in a fresh process by ``benchmarks.speed``.

    python -m benchmarks.memory {baseline,train,score} FOLDER

``baseline`` only imports grindwatch's pipeline and torch. ``train`` fits the
default model (spectrum front end, autoencoder) on the generated speed workload and
saves it to FOLDER; ``score`` loads it and scores the same recordings. The last
line printed is JSON with the peak resident set size in MiB. For ``train`` and
``score`` it includes the 32 MiB of generated recordings.
"""

from __future__ import annotations

import json
import resource
import sys


def main(stage: str, folder: str) -> None:
    import torch  # noqa: F401 - part of the baseline

    from benchmarks.speed import WORKLOAD, _config
    from benchmarks.workload import make_recordings
    from grindwatch.pipeline import Model

    if stage == "train":
        recordings = make_recordings(WORKLOAD["recordings"], WORKLOAD["samples"])
        Model(_config("spectrum", 0)).fit(recordings).save(folder)
    elif stage == "score":
        model = Model.load(folder)
        recordings = make_recordings(WORKLOAD["recordings"], WORKLOAD["samples"])
        model.score(recordings)
    elif stage != "baseline":
        raise SystemExit(f"unknown stage {stage!r}; use baseline, train or score")
    print(json.dumps({"stage": stage, "peak_mib": peak_mib()}))


def peak_mib() -> float:
    """Peak resident set size of this process in MiB.

    Linux's ``VmHWM`` is reset when a process starts a new program. ``ru_maxrss``
    is not: after fork and exec it can report the parent's peak, so it is only the
    fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main(*sys.argv[1:3])
