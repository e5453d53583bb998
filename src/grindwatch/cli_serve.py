"""The ``serve`` and ``watch`` subcommands: score recordings while machines run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from grindwatch.cli import ReadSetOpt, TrackingUriOpt

if TYPE_CHECKING:
    from grindwatch.config import Config

logger = logging.getLogger("grindwatch.cli")

TOKEN_ENV = "GRINDWATCH_TOKEN"

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Model folder or MLflow model URI (runs:/ID/model, models:/NAME@alias).",
    ),
]
VerboseOpt = Annotated[
    int,
    typer.Option("--verbose", "-v", count=True, help="More log output (-vv: debug)."),
]
CsvOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(help="Also keep a CSV copy of the results here."),
]
SettleOpt = Annotated[
    float,
    typer.Option(
        min=0,
        help="Seconds a file's size and modification time must stay unchanged "
        "before it counts as complete (0: as soon as it is seen).",
    ),
]
MarkerSuffixOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        help="A file NAME.EXT is complete once NAME.EXT plus this suffix exists "
        "(e.g. .done), without waiting."
    ),
]
FolderMarkerOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        help="Every recording in a folder that contains a file of this name "
        "(e.g. _COMPLETE) is complete, without waiting."
    ),
]
IntervalOpt = Annotated[
    float,
    # Above 0: a loop without a pause would keep a core busy listing the folder.
    typer.Option(min=0.01, help="Seconds between two scans of the folder."),
]
RunWarningOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="Warn once when this many recordings in a row are flagged along most "
        "of their windows, as after a change of operating point or sensor "
        "(0: never).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``watch`` to the ``grindwatch`` command."""
    app.command()(serve)
    app.command()(watch)


def serve(
    model: ModelOpt,
    host: Annotated[
        str, typer.Option(help="Address to listen on; 127.0.0.1 is this machine only.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    token_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="File whose first line is the bearer token clients must send. "
            f"The {TOKEN_ENV} environment variable is read when this is not given. "
            "There is no --token option, so the token never shows in a process list."
        ),
    ] = None,
    results: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="SQLite results of 'grindwatch watch', shown on the monitoring page."
        ),
    ] = None,
    watch_folder: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--watch",
            help="Also watch this folder in the service; results go to --results "
            "(default: grindwatch-results.sqlite).",
        ),
    ] = None,
    csv: CsvOpt = None,
    settle: SettleOpt = 2.0,
    marker_suffix: MarkerSuffixOpt = None,
    folder_marker: FolderMarkerOpt = None,
    run_warning: RunWarningOpt = 5,
    interval: IntervalOpt = 1.0,
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Model name shown by /model (default: from the URI)."),
    ] = None,
    max_body_mb: Annotated[
        float,
        typer.Option(min=0, help="Maximum request body in MiB; larger gets 413."),
    ] = 100.0,
    max_samples: Annotated[
        int, typer.Option(min=1, help="Maximum samples per channel; more gets 413.")
    ] = 10_000_000,
    max_channels: Annotated[
        int,
        typer.Option(
            min=1,
            help="Maximum channels per recording, counting those the model does "
            "not use; more gets 413.",
        ),
    ] = 1024,
    threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="PyTorch threads per scoring call. Requests are scored in "
            "parallel, one per worker thread, so 1 keeps latency steady.",
        ),
    ] = 1,
    set_: ReadSetOpt = [],  # noqa: B006
    tracking_uri: TrackingUriOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Serve a model over HTTP: scoring API, OpenAPI docs and monitoring page."""
    import torch
    import uvicorn

    from grindwatch._console import console, setup_logging
    from grindwatch.cli import (
        _fail,
        _load_model,
        _run,
        _tracking_config,
        _with_reading_options,
    )
    from grindwatch.serve import ServiceLimits, create_app

    setup_logging(verbose, timestamps=True)
    if int(max_body_mb * 1024 * 1024) < 1:
        _fail(
            f"--max-body-mb {max_body_mb:g} is less than one byte and would reject "
            "every request; give a limit such as 100 (MiB)"
        )
    # One recording is a few dozen windows: splitting that over several threads
    # costs more in synchronisation than it saves, and when requests or other
    # processes compete for the cores, the waiting threads stall every call
    # (measured with benchmarks/serve_latency.py).
    torch.set_num_threads(threads)
    token = _read_token(token_file)
    loaded = _with_reading_options(_load_model(model, tracking_uri), set_)
    shown_name, version = _model_identity(model, name, _tracking_config(tracking_uri))
    store = watcher = None
    if results is not None and watch_folder is None and not results.exists():
        # Without this warning, a mistyped path gives an empty page and no error.
        logger.warning(
            "%s does not exist, so the monitoring page lists no cycles until "
            "'grindwatch watch --results %s' writes them; if a watcher already "
            "runs, pass the --results path it writes to",
            results,
            results,
        )
    if watch_folder is not None or results is not None:
        store = _run(_store, results or Path("grindwatch-results.sqlite"))
    if watch_folder is not None:
        watcher = _run(
            _watcher,
            loaded,
            watch_folder,
            store,
            csv_path=csv,
            settle_seconds=settle,
            marker_suffix=marker_suffix,
            folder_marker=folder_marker,
            run_warning=run_warning,
        )
    limits = ServiceLimits(int(max_body_mb * 1024 * 1024), max_samples, max_channels)
    app = _run(
        create_app,
        loaded,
        name=shown_name,
        version=version,
        token=token,
        limits=limits,
        store=store,
        watcher=watcher,
        watch_interval=interval,
    )
    bind_problem = _bind_problem(host, port)
    if bind_problem is not None:
        _fail(bind_problem)
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "listening on %s without a token: anyone who reaches this address can "
            "use the service; set %s or --token-file",
            host,
            TOKEN_ENV,
        )
    console().print(
        f"Serving {shown_name} on http://{host}:{port} (bearer token "
        f"{'required; open the pages as /#token=TOKEN' if token else 'not required'}"
        "); Ctrl-C stops.",
        highlight=False,
    )
    uvicorn.run(
        app, host=host, port=port, log_level="warning" if verbose == 0 else "info"
    )
    console().print(f"Stopped serving {shown_name}.", highlight=False)


def watch(
    folder: Annotated[Path, typer.Argument(help="Folder to watch, subfolders too.")],
    model: ModelOpt,
    results: Annotated[
        Path, typer.Option(help="SQLite file that keeps every result.")
    ] = Path("grindwatch-results.sqlite"),
    csv: CsvOpt = None,
    settle: SettleOpt = 2.0,
    marker_suffix: MarkerSuffixOpt = None,
    folder_marker: FolderMarkerOpt = None,
    run_warning: RunWarningOpt = 5,
    interval: IntervalOpt = 1.0,
    once: Annotated[
        bool,
        typer.Option(
            help="Scan, wait --settle seconds, scan again, score what is complete, "
            "and exit."
        ),
    ] = False,
    set_: ReadSetOpt = [],  # noqa: B006
    tracking_uri: TrackingUriOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Score each new recording that lands in a folder; log every alarm."""
    from grindwatch._console import console, setup_logging
    from grindwatch.cli import _fail, _load_model, _run, _with_reading_options

    setup_logging(verbose, timestamps=True)
    loaded = _with_reading_options(_load_model(model, tracking_uri), set_)
    store = _run(_store, results)
    watcher = _run(
        _watcher,
        loaded,
        folder,
        store,
        csv_path=csv,
        settle_seconds=settle,
        marker_suffix=marker_suffix,
        folder_marker=folder_marker,
        run_warning=run_warning,
    )
    if not once:
        try:
            console().print(
                f"Watching {folder}; results in {results}; Ctrl-C stops.",
                highlight=False,
            )
            watcher.run(interval=interval)
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM is how a watcher stops, so it is no error. The
            # exit status stays 130, as for any interrupted command.
            console().print(f"Stopped watching {folder}.", highlight=False)
            raise typer.Exit(130) from None
        console().print(f"Stopped watching {folder}.", highlight=False)
        return
    console().print(f"Scanning {folder} once; results in {results}.", highlight=False)
    # A file counts as complete only once two scans --settle seconds apart saw it
    # unchanged, so one scan alone would score nothing.
    added = watcher.run(interval=settle, max_polls=2 if settle > 0 else 1)
    # After a failed write, the files not stored stay seen but are not changing,
    # and the error below covers them.
    pending = [] if watcher.store_failing else watcher.pending()
    waiting = watcher.waiting_cycle_folders()
    empty = watcher.empty()
    failed = len(watcher.failed)
    left_out = len(watcher.left_out)
    console().print(
        f"Scored {len(added) - failed} new file"
        f"{'' if len(added) - failed == 1 else 's'}."
        + (
            f" {failed} could not be scored; {results} keeps the reasons."
            if failed
            else ""
        )
        + (
            f" {left_out} {'was' if left_out == 1 else 'were'} left out because "
            "their metadata does not match "
            f"data.match {dict(loaded.config.data.match)}."
            if left_out
            else ""
        )
        + (
            f" {len(pending)} {'was' if len(pending) == 1 else 'were'} still "
            "changing and left for the next run: "
            f"{', '.join(pending[:5])}{' ...' if len(pending) > 5 else ''}."
            if pending
            else ""
        )
        + (
            f" {len(waiting)} cycle "
            f"{'folder has' if len(waiting) == 1 else 'folders have'} streams but no "
            f"meta.json yet and wait for the next run: {', '.join(waiting[:5])}"
            f"{' ...' if len(waiting) > 5 else ''}."
            if waiting
            else ""
        )
        + (
            f" {len(empty)} {'file is' if len(empty) == 1 else 'files are'} empty "
            "and wait for content: "
            f"{', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}."
            if empty
            else ""
        ),
        highlight=False,
    )
    if watcher.store_failing:
        _fail(
            f"{results}: could not store every result (see the errors above); "
            "the files not stored are scored at the next run"
        )
    if watcher.csv_behind:
        _fail(
            f"{csv}: could not write the CSV copy (see the errors above); {results} "
            "keeps every result, and the next run writes the copy"
        )


def _store(path: Path):  # noqa: ANN202
    from grindwatch.watch import ResultStore

    return ResultStore(path)


def _watcher(model, folder: Path, store, **options: Any):  # noqa: ANN001, ANN202
    """Build the folder watcher; ``options`` are ``Watcher``'s keyword arguments."""
    from grindwatch.exceptions import InputError
    from grindwatch.watch import Watcher

    if folder.exists() and not folder.is_dir():
        raise InputError(
            folder,
            "is a file, not a folder",
            "pass the folder that new recordings land in",
        )
    if not folder.is_dir():
        raise InputError(folder, "no such folder", "create it or check the path")
    return Watcher(model, folder, store, **options)


def _read_token(token_file: Path | None) -> str | None:
    from grindwatch.cli import _fail

    if token_file is not None:
        try:
            lines = token_file.read_text().splitlines()
        except OSError as error:
            _fail(f"{token_file}: cannot read the token file ({error.strerror})")
        token = lines[0].strip() if lines else ""
        if not token:
            _fail(f"{token_file}: the token file is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def _model_identity(
    uri: str, name: str | None, config: Config | None = None
) -> tuple[str, str | None]:
    """The model's name and registered version, as far as the URI gives them.

    ``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` name a registered model, and
    an alias is resolved in the tracking store of ``config``. Any other URI or
    folder is its own name, without a registered version.
    """
    if not uri.startswith("models:/"):
        return name or uri, None
    reference = uri.removeprefix("models:/")
    if "@" in reference:
        from grindwatch.tracking import registered_model_version

        registered, alias = reference.split("@", 1)
        return name or registered, registered_model_version(registered, alias, config)
    registered, _, version = reference.partition("/")
    return name or registered, version or None


def _bind_problem(host: str, port: int) -> str | None:
    """Try to bind ``host``:``port``. Return None when that works, else the reason
    it failed and the fix."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as error:
            return (
                f"cannot listen on {host}: the host name cannot be resolved "
                f"({error.strerror}); pass --host 127.0.0.1 or an address of this "
                "machine"
            )
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use; pass another --port"
            if error.errno == errno.EADDRNOTAVAIL:
                return (
                    f"cannot listen on {host}: the address cannot be bound "
                    f"({error.strerror}), because it is not an address of this "
                    "machine; pass --host 127.0.0.1 or an address of this machine"
                )
            return (
                f"cannot listen on {host} port {port} ({error.strerror}); pass "
                "another --port, or --host 127.0.0.1"
            )
    return None
