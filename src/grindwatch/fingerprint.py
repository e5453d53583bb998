"""A fingerprint of the training data: which files, how large, and their hashes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from grindwatch.io.recording import Recording, RecordingSet

__all__ = ["content_fingerprint", "data_fingerprint", "describe_file", "file_sha256"]


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def content_fingerprint(path: Path) -> tuple[int, str]:
    """Return the size in bytes and the SHA-256 of a file or cycle folder.

    A cycle folder's hash covers each file's name relative to the folder and its
    content, in sorted order. It stays the same when the folder is moved or
    renamed, and changes when a file inside is added, removed, renamed or edited.
    """
    if not path.is_dir():
        size = path.stat().st_size
        return size, file_sha256(path)
    digest = hashlib.sha256()
    size = 0
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        # os.fsencode gives back the bytes of a name that is not UTF-8, which
        # str.encode would reject, and the same bytes as before for the rest.
        digest.update(os.fsencode(item.relative_to(path)))
        digest.update(file_sha256(item).encode())
        size += item.stat().st_size
    return size, digest.hexdigest()


def describe_file(path: Path) -> dict[str, Any]:
    """Describe a file or cycle folder: path, size in bytes and SHA-256."""
    size, sha256 = content_fingerprint(path)
    return {"path": str(path), "bytes": size, "sha256": sha256}


def data_fingerprint(recordings: RecordingSet) -> dict[str, Any]:
    """Describe the files behind a data set so a run can be matched to its data."""
    files = [describe_file(path) for path in recordings.files]
    # NOTE: the combined hash follows the order of the files, so the same files
    # passed in another order get another one, and a tune resume then reports
    # them as changed. Sorting would change the hash that existing studies store.
    hashes = [f["sha256"] for f in files]
    # Recordings built in memory have no file to hash, so their content is hashed.
    # Otherwise every in-memory set gets the hash of nothing, and a tune resume on
    # other in-memory recordings is not rejected.
    hashes += [_content_sha256(r) for r in recordings.recordings if r.source is None]
    combined = hashlib.sha256("".join(hashes).encode()).hexdigest()
    return {
        "sha256": combined,
        "n_files": len(files),
        "n_recordings": len(recordings),
        "channels": recordings.channels,
        "sample_rate": recordings.sample_rate,
        "files": files,
        "skipped": [
            {"path": str(s.path), "reason": s.reason} for s in recordings.skipped
        ],
    }


def _content_sha256(recording: Recording) -> str:
    """Hash a recording's name, channels, sample rate and samples."""
    digest = hashlib.sha256()
    digest.update(recording.name.encode())
    digest.update("\0".join(recording.channels).encode())
    digest.update(repr(recording.sample_rate).encode())
    digest.update(np.ascontiguousarray(recording.data).tobytes())
    return digest.hexdigest()
