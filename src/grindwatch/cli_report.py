"""The ``report`` subcommand: an HTML report that explains each flagged recording."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from grindwatch.cli import ReadSetOpt, TrackingUriOpt


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``grindwatch`` command."""
    app.command()(report)


def report(
    data: Annotated[
        Optional[list[str]],  # noqa: UP045 - typer needs Optional for nargs arguments
        typer.Argument(help="Files, folders or glob patterns of recordings."),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Model folder or MLflow model URI (runs:/ID/model, "
            "models:/NAME@alias).",
        ),
    ] = ...,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="HTML file to write.")
    ] = Path("grindwatch-report.html"),
    scores: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Recording scores saved by 'grindwatch score --output', or the "
            "output folder of 'grindwatch spark-score' (the window table beside "
            "it is read too); the data is then not scored again."
        ),
    ] = None,
    max_details: Annotated[
        int,
        typer.Option(
            min=0,
            help="Flagged recordings that get a detail section, highest scores first.",
        ),
    ] = 20,
    title: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Report title (default: the number of recordings)."),
    ] = None,
    track: Annotated[
        bool,
        typer.Option(help="Log the report to a new MLflow scoring run."),
    ] = True,
    study: Annotated[
        bool,
        typer.Option(
            help="Add the study the model came from, read from MLflow, when there "
            "is one."
        ),
    ] = True,
    reference: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--reference",
            help="Known-good recordings (a file, folder or glob pattern, repeatable), "
            "such as the training data, to compare each flagged recording with. "
            "They are read like the data but are not rows of the report. Needed "
            "when every scored recording is flagged.",
        ),
    ] = None,
    set_: ReadSetOpt = [],  # noqa: B006
    tracking_uri: TrackingUriOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout.")
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, help="More log output (-vv: debug)."
        ),
    ] = 0,
) -> None:
    """Score recordings and write a self-contained HTML report of the flagged ones."""
    from grindwatch._console import console, progress_bar, setup_logging
    from grindwatch._nouns import item_noun
    from grindwatch.cli import (
        _echo_json,
        _fail,
        _load_model,
        _print_untracked,
        _run,
        _with_reading_options,
    )
    from grindwatch.report import create_report

    setup_logging(verbose)
    if not data:
        _fail("no data given; pass the files or folders to report on")
    if scores is not None and not Path(scores).exists():
        _fail(
            f"{scores}: score table not found; pass the --output file of "
            "'grindwatch score' or the --output folder of 'grindwatch spark-score'"
        )
    loaded = _with_reading_options(_load_model(model, tracking_uri), set_)
    _check_report_path(output, data, reference, scores, loaded.kind_)
    with progress_bar(not json_output) as progress:
        result = _run(
            create_report,
            loaded,
            data,
            output,
            scores=scores,
            max_details=max_details,
            title=title,
            track=track,
            study=study,
            progress=progress,
            reference=reference or None,
        )
    summary = {
        "report": str(result.path),
        "size_bytes": result.size_bytes,
        "seconds": round(result.seconds, 2),
        "n_recordings": result.n_recordings,
        "n_flagged": result.n_flagged,
        "n_details": result.n_details,
        "n_flagged_not_read": result.n_flagged_not_read,
        "n_reference": result.n_reference,
        "n_reference_flagged": result.n_reference_flagged,
        "n_reference_skipped": result.n_reference_skipped,
        "has_comparison": result.has_comparison,
        "run_id": result.run_id,
        "tracking_uri": result.tracking_uri,
    }
    if json_output:
        _echo_json(summary)
        return
    items = item_noun(loaded.kind_)
    item = item_noun(loaded.kind_, 1)
    out = console()
    # "1 of 1 row", and "0 of 2 rows": the noun agrees with the total.
    out.print(
        f"{result.n_flagged} of {result.n_recordings} "
        f"{item_noun(loaded.kind_, result.n_recordings)} flagged; "
        f"{result.n_details} with a detail section.",
        highlight=False,
    )
    if result.n_flagged_not_read:
        out.print(
            f"{result.n_flagged_not_read} flagged {items} of {scores} are not "
            "among the data given, so they have no detail section; pass the data "
            f"that was scored, with the same {item} names.",
            highlight=False,
        )
    if reference:
        out.print(
            f"Reference {items}: {result.n_reference} used, "
            f"{result.n_reference_flagged} left out because the model flags them, "
            f"{result.n_reference_skipped} could not be read or matched.",
            highlight=False,
        )
    if result.n_details and not result.has_comparison:
        if reference and not result.n_reference_flagged:
            advice = (
                f"and every reference {item} is among the scored data. Pass "
                f"known-good {items}, such as the training data, with --reference."
            )
        elif reference:
            advice = (
                f"and the model flags every usable reference {item}. Pass other "
                f"known-good {items} with --reference, or check the model's "
                "threshold."
            )
        else:
            advice = (
                f"and no --reference was given. Pass known-good {items}, such "
                "as the training data, with --reference."
            )
        # With --scores, the table can list normal recordings whose signals are
        # not in the data given, so they cannot serve as a comparison.
        where = "the data given (whose signals are read)" if scores else "the data"
        out.print(
            f"The detail sections have no normal {item} to compare with, because "
            f"no {item} in {where} is scored as normal, {advice}",
            highlight=False,
        )
    out.print(
        f"Wrote {result.path} ({result.size_bytes / 1e6:.1f} MB) in "
        f"{result.seconds:.1f} s",
        highlight=False,
    )
    if result.run_id:
        out.print(
            f"Logged to MLflow run {result.run_id} in {result.tracking_uri}",
            highlight=False,
        )
    elif track and not loaded.config.tracking.enabled:
        _print_untracked()


def _check_report_path(
    output: Path,
    data: list[str],
    reference: list[str] | None,
    scores: Path | None,
    kind: str,
) -> None:
    """Exit with an error when the report cannot be written at ``output`` or
    would replace one of its inputs."""
    from grindwatch.cli import _fail, _run
    from grindwatch.exceptions import InputError
    from grindwatch.io import list_files
    from grindwatch.report.references import REFERENCE_FIX
    from grindwatch.results import check_output_folder

    _run(check_output_folder, output.parent)
    inputs = _run(list_files, data, kind)
    try:
        inputs += list_files(reference or [], kind)
    except InputError as error:
        # Checked here, so that a wrong reference path fails before the data
        # is read and scored, with the message that reading it would give.
        _fail(
            str(
                InputError(
                    error.path,
                    f"reference recordings: {error.problem}",
                    error.fix or REFERENCE_FIX,
                )
            )
        )
    if scores is not None and not scores.is_dir():
        inputs.append(scores)
    target = output.resolve()
    for path in inputs:
        if path.resolve() == target:
            _fail(
                f"{path}: is both an input of the report and where --output "
                "would write, so it would be lost; choose another output path, "
                "such as report.html"
            )
