"""Readers: one per file format, chosen by extension, all returning ``Recording``."""

from grindwatch.io.dataset import list_files, load_recordings, read_file
from grindwatch.io.labels import label_from_path, read_labels_csv
from grindwatch.io.options import ReadOptions
from grindwatch.io.recording import Recording, RecordingSet, SkippedFile

__all__ = [
    "ReadOptions",
    "Recording",
    "RecordingSet",
    "SkippedFile",
    "label_from_path",
    "list_files",
    "load_recordings",
    "read_file",
    "read_labels_csv",
]
