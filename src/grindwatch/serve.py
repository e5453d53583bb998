"""REST scoring service and live monitoring page (FastAPI).

``create_app(model)`` builds the application around a model loaded once; the
``grindwatch serve`` command runs it with uvicorn, and tests drive it in-process
with ``fastapi.testclient.TestClient``. The endpoints:

- ``POST /score``: one recording as JSON, samples listed per channel name.
- ``POST /score/file``: one recording as an uploaded file in any format grindwatch
  reads, chosen by the file name's extension.
- ``GET /model``: what the model expects and how it was trained.
- ``GET /health``: liveness, never behind the token.
- ``GET /api/cycles`` and ``GET /api/cycles/{id}``: the results a folder watcher
  stored, for the monitoring page at ``/`` and the cycle page at ``/cycles/{id}``.

With a bearer token set, the scoring, model and ``/api`` endpoints need
``Authorization: Bearer <token>``. ``/health``, the static pages, ``/openapi.json``
and ``/docs`` stay open. The pages read the token from the address's
fragment (``/#token=...``), which browsers never send to the server, so it does not
reach any access log.
"""

from __future__ import annotations

import codecs
import contextlib
import hmac
import json
import logging
import math
import re
import struct
import tempfile
import threading
import zipfile
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, UploadFile
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from grindwatch._version import __version__
from grindwatch.config import DataConfig
from grindwatch.exceptions import (
    ConfigError,
    InputError,
    lookalike_names,
    missing_channels_fix,
    shorten_list,
)
from grindwatch.io import Recording, read_file
from grindwatch.io.dataset import SIGNAL_SUFFIXES
from grindwatch.io.frames import TimeColumnRateError
from grindwatch.io.options import ReadOptions
from grindwatch.io.samples import check_quality
from grindwatch.online import CycleScore, check_signal_model, score_recording
from grindwatch.pipeline import Model, scoring_options

if TYPE_CHECKING:
    from grindwatch.watch import ResultStore, Watcher

logger = logging.getLogger(__name__)

__all__ = ["ServiceLimits", "create_app"]

STATIC = Path(__file__).with_name("static")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Reading settings that a reader's fix can name, such as "set raw_dtype" or
# "set data.encoding". Names without "_", such as kind and match, are left out
# because they also occur as plain words in fixes.
_SERVER_SETTING = re.compile(
    r"--set|--channels|in the config|\bdata\.\w|\b(?:"
    + "|".join(name for name in DataConfig.model_fields if "_" in name or "5" in name)
    + r")\b"
)


@dataclass(frozen=True)
class ServiceLimits:
    """Request size limits; larger requests are rejected with status 413.

    Attributes
    ----------
    max_body_bytes : int
        Maximum request body, JSON or upload, in bytes.
    max_samples : int
        Maximum samples per channel in one recording, as sent and, with
        ``data.resample``, at the model's rate.
    max_channels : int
        Maximum channels in one recording, counting those the model does not
        use. Reading and checking work per channel, and 100,000 CSV columns of
        two rows took 30 s to read.
    """

    max_body_bytes: int = 100 * 1024 * 1024
    max_samples: int = 10_000_000
    max_channels: int = 1024


# Request and response bodies ---------------------------------------------------------

Sample = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class ScoreRequest(BaseModel):
    """One recording, with its samples listed per channel name."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "cycle_0042",
                    "sample_rate": 20000.0,
                    "channels": {"vib_x": [0.01, -0.02], "ae": [0.1, 0.12]},
                }
            ]
        },
    )

    name: str = Field(
        default="request",
        min_length=1,
        max_length=256,
        description="Recording name, repeated in the response.",
    )
    # Strict like the samples, because lax mode reads true as 1 Hz, and with
    # data.resample a 1 kHz recording then becomes a thousand times longer.
    sample_rate: float | None = Field(
        default=None,
        strict=True,
        gt=0,
        allow_inf_nan=False,
        description="Samples per second of every channel. Omitted: the model's own "
        "rate is assumed. A rate other than the model's is rejected with 422, "
        "because the model's windows and spectra are only valid at its own rate, "
        "unless the service was started with data.resample: true, which resamples "
        "the recording to the model's rate.",
    )
    channels: dict[str, list[Sample]] = Field(
        min_length=1,
        description="Samples of each channel, keyed by channel name. Channels are "
        "matched to the model's by name in any order; channels the model does not "
        "use are ignored; a missing channel is rejected with 422 listing the "
        "missing names. Every list holds the same number of samples. JSON integers "
        "and decimals are both accepted and converted to float32 without scaling "
        "(send ADC counts only to a model trained on counts); strings, booleans, "
        "NaN, infinity and values beyond the float32 range are rejected with 422.",
    )


class ErrorResponse(BaseModel):
    """Reason a request was rejected."""

    detail: str = Field(description="What was wrong and what to change.")
    missing_channels: list[str] | None = Field(
        default=None, description="Channels the model needs and the request lacks."
    )
    expected_channels: list[str] | None = Field(
        default=None, description="All channels the model needs, in its order."
    )


class ChannelShare(BaseModel):
    """One channel's share in a departure from normal."""

    channel: str = Field(description="Channel name.")
    share: float = Field(
        description="Fraction of the departure from normal (the detector's "
        "per-channel error) that comes from this channel, 0 to 1; the shares of "
        "one recording or window add up to 1, or are all 0 when nothing departs."
    )


class FlaggedWindow(BaseModel):
    """A window whose score is above the threshold, with its channel shares."""

    window: int = Field(description="Window index within the recording, from 0.")
    score: float = Field(description="The window's anomaly score.")
    channels: list[ChannelShare] = Field(description="Shares, largest first.")


class Attribution(BaseModel):
    """Channel attribution: where the recording's departure from normal comes from."""

    top_channel: str | None = Field(
        description="Channel with the largest share; null when nothing departs."
    )
    channels: list[ChannelShare] = Field(
        description="Shares summed over the flagged windows, or the worst window "
        "when none is flagged, largest first; as top_channel_share in score tables."
    )
    flagged_windows: list[FlaggedWindow] = Field(
        description="Shares of each flagged window, in window order."
    )


class WindowScore(BaseModel):
    """The score of one window."""

    window: int = Field(description="Window index within the recording, from 0.")
    start_sample: int = Field(description="First sample of the window.")
    start_s: float | None = Field(
        description="Window start in seconds from the recording start; null when "
        "the model has no sample rate."
    )
    end_s: float | None = Field(description="Window end in seconds, as start_s.")
    score: float = Field(description="Anomaly score, higher is more anomalous.")
    flag: bool = Field(description="True when score is above the threshold.")


class RecordingScore(BaseModel):
    """The score of the whole recording."""

    name: str = Field(description="Recording name from the request or file name.")
    score: float = Field(
        description="Recording score: the model's aggregate (max, mean or a "
        "quantile) of its window scores; higher is more anomalous."
    )
    flag: bool = Field(
        description="True when score is above the threshold, or when the cycle "
        "check flags the recording."
    )
    n_windows: int = Field(description="Windows cut from the recording.")
    flagged_windows: int = Field(description="Windows whose score is above it.")
    max_window_score: float = Field(description="Largest window score.")
    cycle_score: float | None = Field(
        None,
        description="Cycle check: the largest robust z-score of the recording's "
        "profile (levels, activities, length) against the training recordings; "
        "null when the model has no cycle check.",
    )
    cycle_flag: bool | None = Field(
        None, description="True when cycle_score is above the cycle threshold."
    )
    cycle_channel: str | None = Field(
        None,
        description="Channel of the profile value furthest from the training "
        "recordings; null when it is the recording's length or without a check.",
    )
    cycle_reason: str | None = Field(
        None,
        description="The profile value furthest from the training recordings, "
        "with its value, the training median and the z-score.",
    )


class ScoreResponse(BaseModel):
    """Scores, flags and attribution of one recording."""

    recording: RecordingScore
    threshold: float = Field(
        description="The model's threshold: windows and recordings whose score is "
        "above it are flagged."
    )
    windows: list[WindowScore] = Field(description="Every window, in order.")
    attribution: Attribution | None = Field(
        description="Channel shares; null when the request set explain=false."
    )


class TrainingData(BaseModel):
    """Fingerprint of the data the model was trained on."""

    sha256: str | None = Field(
        description="SHA-256 over the SHA-256 of every training file, in order."
    )
    n_files: int | None = Field(description="Training files.")
    n_recordings: int | None = Field(
        description="Recordings the model was trained on (short ones left out)."
    )


class ModelInfo(BaseModel):
    """The served model: what it expects and how it was trained."""

    name: str = Field(
        description="Registered model name when the model URI names one, else the "
        "model URI or folder the service was started with."
    )
    version: str | None = Field(
        description="Registered model version when known, else the MLflow run id "
        "of its training, else null."
    )
    run_id: str | None = Field(description="MLflow run that trained the model.")
    grindwatch_version: str = Field(description="grindwatch version that trained it.")
    service_version: str = Field(description="grindwatch version serving it.")
    channels: list[str] = Field(description="Channels the model needs, in order.")
    sample_rate: float | None = Field(
        description="Samples per second the model was trained at; null if unknown."
    )
    window_length: int = Field(description="Window length in samples.")
    hop: int = Field(description="Samples between the starts of two windows.")
    frontend: str = Field(description="Front end: raw, spectrum or features.")
    detector: str = Field(description="Detector family.")
    aggregate: str = Field(
        description="How window scores become the recording score: max, mean, or "
        "quantile:<q>."
    )
    threshold: float = Field(description="Flagging threshold on the anomaly score.")
    threshold_method: str = Field(description="How the threshold was fitted.")
    threshold_description: str = Field(description="The threshold, in words.")
    cycle_threshold: float | None = Field(
        None,
        description="Threshold on the cycle check's score; null when the model "
        "has no cycle check (too few training recordings, or turned off).",
    )
    cycle_check_description: str | None = Field(
        None, description="The cycle check and its threshold, in words."
    )
    training_data: TrainingData


class Health(BaseModel):
    """Liveness of the service."""

    status: str = Field(description="Always 'ok' while the service responds.")
    model_loaded: bool = Field(description="True once the model is in memory.")
    watching: bool = Field(
        description="True while the folder watcher thread runs; false without a "
        "watcher and after the watcher stopped on an error."
    )


class CycleSummary(BaseModel):
    """One file the folder watcher scored or failed to read."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(description="Result id, increasing in the order of scoring.")
    path: str = Field(
        description="File path relative to the watched folder, where it was scored."
    )
    current_path: str | None = Field(
        None,
        description="Where the file was last seen, relative to the watched folder: "
        "path, unless it was moved or renamed after scoring.",
    )
    source: str | None = Field(
        None,
        description="Full path of the file where it was scored; null for results "
        "stored by grindwatch versions that did not keep it.",
    )
    status: str = Field(description="'scored', or 'failed' with a reason.")
    recording: str | None = Field(description="Recording name.")
    score: float | None = Field(description="Recording score; null if failed.")
    flag: bool | None = Field(description="True for an alarm; null if failed.")
    threshold: float | None = Field(description="Threshold used for this file.")
    n_windows: int | None = Field(description="Windows scored.")
    flagged_windows: int | None = Field(description="Windows above the threshold.")
    cycle_score: float | None = Field(
        None, description="Cycle check score; null without a cycle check."
    )
    cycle_threshold: float | None = Field(
        None, description="Cycle check threshold used for this file."
    )
    cycle_flag: bool | None = Field(
        None, description="True when the cycle check flags the recording."
    )
    cycle_channel: str | None = Field(
        None, description="Channel the cycle check names; null for the length."
    )
    cycle_reason: str | None = Field(
        None, description="The cycle check's largest departure, in words."
    )
    top_channel: str | None = Field(description="Channel with the largest share.")
    reason: str | None = Field(description="Why the file failed; null if scored.")
    scored_at: str = Field(description="When it was scored, ISO 8601 UTC.")


class CycleList(BaseModel):
    """The latest results of the folder watcher."""

    model: str = Field(description="Name of the served model.")
    threshold: float = Field(description="The served model's threshold.")
    results_store: bool = Field(
        description="False when the service was started without a results store, "
        "so there is nothing to list."
    )
    cycles: list[CycleSummary] = Field(description="Oldest first.")
    notice: str | None = Field(
        None,
        description="The watcher's warning about its latest results, such as a "
        "run of recordings flagged along most of their windows, which a changed "
        "operating point or sensor causes more often than a fault; null without one.",
    )


class CycleWindow(BaseModel):
    """One window of a stored cycle."""

    model_config = ConfigDict(extra="ignore")

    window: int = Field(description="Window index within the recording, from 0.")
    start_sample: int = Field(description="First sample of the window.")
    start_s: float | None = Field(description="Window start in seconds, if known.")
    end_s: float | None = Field(description="Window end in seconds, if known.")
    score: float = Field(description="Anomaly score.")
    flag: bool = Field(description="True when above the threshold.")
    channel_shares: dict[str, float] | None = Field(
        description="Share of each channel in this window's departure from normal."
    )


class CycleDetail(CycleSummary):
    """A stored cycle with its window scores and channel shares."""

    max_window_score: float | None = Field(description="Largest window score.")
    channel_shares: dict[str, float] | None = Field(
        description="Share of each channel, summed over the flagged windows, or "
        "the worst window when none is flagged."
    )
    windows: list[CycleWindow] = Field(description="Every window, in order.")


# The application ----------------------------------------------------------------------

_REJECTIONS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    413: {"model": ErrorResponse, "description": "Body or recording too large."},
    422: {
        "model": ErrorResponse,
        "description": "Invalid recording: missing channels, wrong sample rate, "
        "too short, unreadable, or a malformed body.",
    },
}

_INVALID_PARAMETER: dict[str, Any] = {
    "model": ErrorResponse,
    "description": "Invalid query or path parameter.",
}


class _Rejected(Exception):
    """A request the service rejects with ``status`` and an ErrorResponse body."""

    def __init__(self, status: int, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = ErrorResponse(detail=detail, **fields)


def _check_limits_fit_model(model: Model, limits: ServiceLimits) -> None:
    """Raise ConfigError when the limits reject every recording the model can score.

    Without this check such a service starts and rejects each request with a 413
    whose fix (send fewer channels or samples) the client cannot follow.
    """
    n_channels = len(model.channels_)
    if limits.max_channels < n_channels:
        raise ConfigError(
            f"the channel limit {limits.max_channels} is less than the "
            f"{n_channels} channels the model needs, so every request would be "
            "rejected; set --max-channels (ServiceLimits.max_channels) to "
            f"{n_channels} or more"
        )
    if limits.max_samples < model.window_length_:
        raise ConfigError(
            f"the sample limit {limits.max_samples} is less than one window of "
            f"{model.window_length_} samples, so every request would be rejected; "
            "set --max-samples (ServiceLimits.max_samples) to "
            f"{model.window_length_} or more"
        )


def _body_limit_message(max_bytes: int, size: int | None) -> str:
    body = "the request body" if size is None else f"the request body of {size} bytes"
    return (
        f"{body} is more than the service's limit of {max_bytes} bytes "
        f"({max_bytes / 2**20:.3g} MiB); split the recording into shorter ones"
    )


class _BodyLimit:
    """ASGI middleware that rejects a body over ``max_bytes`` with a JSON 413.

    A request whose Content-Length exceeds the limit gets the 413 before the
    endpoint runs. A body sent without one is counted as it arrives; the endpoint's read
    fails with an HTTPException that the exception handlers turn into JSON.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            detail = _body_limit_message(self.max_bytes, declared)
            logger.info(
                "rejected %s %s with 413: %s", scope["method"], scope["path"], detail
            )
            response = JSONResponse({"detail": detail}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, _body_limit_message(self.max_bytes, None))
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Any) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def create_app(
    model: Model,
    *,
    name: str = "model",
    version: str | None = None,
    token: str | None = None,
    limits: ServiceLimits | None = None,
    store: ResultStore | None = None,
    watcher: Watcher | None = None,
    watch_interval: float = 1.0,
) -> FastAPI:
    """Build the service around ``model``, which is loaded once and shared.

    Parameters
    ----------
    model : Model
        A model trained on signal recordings.
    name, version : str
        How ``/model`` names the model (see ``ModelInfo``).
    token : str, optional
        Bearer token that the scoring, model and ``/api`` endpoints require.
    limits : ServiceLimits, optional
    store : ResultStore, optional
        Results of a folder watcher, listed by ``/api/cycles``.
    watcher : Watcher, optional
        Run this watcher in a background thread while the service runs, polling
        every ``watch_interval`` seconds.
    """
    check_signal_model(model)
    limits = limits or ServiceLimits()
    _check_limits_fit_model(model, limits)
    if watcher is not None and store is None:
        store = watcher.store
    state: dict[str, threading.Thread | None] = {"watcher_thread": None}
    lifespan = _watcher_lifespan(watcher, watch_interval, state)
    app = FastAPI(
        title="grindwatch",
        version=__version__,
        summary="Anomaly scores for machine-tool sensor recordings.",
        lifespan=lifespan,
    )
    # FastAPI's own max_body_size replies in plain text and omits the limit.
    app.add_middleware(_BodyLimit, max_bytes=limits.max_body_bytes)
    authorize = _bearer_check(token)
    info = _model_info(model, name, version)

    @app.exception_handler(_Rejected)
    async def _rejected(request: Request, error: _Rejected) -> JSONResponse:
        logger.info(
            "rejected %s %s with %d: %s",
            request.method,
            request.url.path,
            error.status,
            error.body.detail,
        )
        return JSONResponse(
            error.body.model_dump(exclude_none=True), status_code=error.status
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        message = _validation_message(error)
        logger.info(
            "rejected %s %s with 422: %s", request.method, request.url.path, message
        )
        return JSONResponse({"detail": message}, status_code=422)

    @app.get("/health", tags=["service"])
    def health() -> Health:
        """Report that the service runs and its model is loaded."""
        thread = state["watcher_thread"]
        watching = thread is not None and thread.is_alive()
        return Health(status="ok", model_loaded=True, watching=watching)

    @app.get(
        "/model",
        tags=["service"],
        dependencies=[Depends(authorize)],
        responses={401: _REJECTIONS[401]},
    )
    def model_info() -> ModelInfo:
        """Describe the served model: channels, rate, window, threshold, data."""
        return info

    _add_scoring(app, model, limits, authorize)
    _add_dashboard(app, model, name, store, watcher, authorize)
    _document_request_body(app)
    return app


# POST /score parses its body itself (see _parse_score_request), so FastAPI cannot
# see the model: the OpenAPI schema gets it from here and _document_request_body.
_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ScoreRequest"}
            }
        },
    }
}


def _check_json_content_type(request: Request) -> None:
    """Reject a body not declared as JSON, as FastAPI does for its own models.

    A browser sends text/plain across sites without a preflight request, so
    accepting it would let any web page a user opens post to a service on
    their machine.
    """
    declared = request.headers.get("content-type", "")
    media_type = declared.split(";")[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    received_type = f"'{declared}'" if declared else "none"
    raise _Rejected(
        415,
        "the body must be sent with Content-Type: application/json (got "
        f"{received_type}); use /score/file to upload a recording file",
    )


def _check_identity_encoding(request: Request) -> None:
    """Reject a compressed body, which the service would parse as invalid JSON."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise _Rejected(
            415,
            f"Content-Encoding {encoding!r} is not supported; send the body "
            "uncompressed, without a Content-Encoding header",
        )


def _parse_score_request(body: bytes, limits: ServiceLimits) -> ScoreRequest:
    """Parse and validate a JSON body in one pass, after checking its array sizes.

    pydantic's own JSON parser reads a one-second 3-channel 20 kHz recording in
    about a fifth of the time that ``json.loads`` followed by validation takes,
    which is most of the request's latency.
    """
    # Windows tools such as Notepad start UTF-8 files with a byte order mark,
    # which pydantic's parser rejects as "expected value at line 1 column 1".
    body = body.removeprefix(codecs.BOM_UTF8)
    _check_json_sizes(body, limits)
    # NOTE: a body within the limits is still parsed whole into Python floats,
    # about 75 bytes per sample (pydantic 2.14, measured on 21 million samples).
    # 100 MiB of single-digit samples in channels under max_samples each would
    # take an estimated 4 GB, so lower --max-body-mb on small machines.
    try:
        return ScoreRequest.model_validate_json(body)
    except ValidationError as error:
        problems = [
            {**problem, "loc": ("body", *problem["loc"])}
            for problem in error.errors(include_url=False, include_context=False)
        ]
        raise RequestValidationError(problems) from None


# The start of a JSON string or array, and a whole string. The possessive
# quantifiers stop backtracking, so that an unclosed string costs one pass.
_JSON_QUOTE_OR_BRACKET = re.compile(rb'["\[]')
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
# Strings a valid body contains besides its channel names: the keys name,
# sample_rate and channels, and the name's value.
_JSON_OTHER_STRINGS = 4


def _check_json_sizes(body: bytes, limits: ServiceLimits) -> None:
    """Reject a JSON body with too many channels or samples before parsing it.

    The parser turns every sample into a Python float, and 100 MiB of
    single-digit samples took 4.5 GB of memory, so the samples of each array
    are counted first, from the commas between its brackets. Arrays in a valid
    body hold numbers only, so the count is exact for a non-empty one. Channels
    are counted as arrays, and as strings less the four other strings a body
    may hold. In an invalid body the parser's 422 follows.
    """
    if (
        body.count(b",") < limits.max_samples
        and body.count(b"[") <= limits.max_channels
    ):
        return  # no array can hold more samples, and no more arrays fit
    arrays = strings = position = 0
    last_string = None
    while match := _JSON_QUOTE_OR_BRACKET.search(body, position):
        position = match.end()
        if match.group() == b'"':
            last_string = _JSON_STRING.match(body, match.start())
            if last_string is None:
                return  # an unclosed string, which the parser reports
            strings += 1
            position = last_string.end()
        else:
            arrays += 1
        if max(arrays, strings - _JSON_OTHER_STRINGS) > limits.max_channels:
            raise _Rejected(
                413,
                f"the request body contains more than {limits.max_channels} channels, "
                "the limit; send only the channels the model uses",
            )
        if match.group() == b'"':
            continue
        end = body.find(b"]", position)
        if end < 0:
            return  # an unclosed array, which the parser reports
        samples = body.count(b",", position, end) + 1
        if samples > limits.max_samples:
            channel = _json_key_before(body, last_string, match.start())
            raise _Rejected(
                413,
                f"the request body: channel {channel} has {samples} samples, more "
                f"than the limit of {limits.max_samples} per channel; split the "
                "recording",
            )
        position = end + 1


def _json_key_before(body: bytes, string: re.Match | None, bracket: int) -> str:
    """Return the quoted key that opens the array at ``bracket``, or '(unnamed)'."""
    if string is None or body[string.end() : bracket].strip(b" \t\r\n") != b":":
        return "(unnamed)"
    try:
        return repr(json.loads(string.group()))
    except ValueError:
        return "(unnamed)"


def _document_request_body(app: FastAPI) -> None:
    """Add ScoreRequest to the OpenAPI components, where /score refers to it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("schemas", {})[
                "ScoreRequest"
            ] = ScoreRequest.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _add_scoring(
    app: FastAPI, model: Model, limits: ServiceLimits, authorize: Any
) -> None:
    """Add POST /score (JSON) and POST /score/file (upload) to ``app``."""

    @app.post(
        "/score",
        tags=["scoring"],
        dependencies=[Depends(authorize)],
        responses={
            **_REJECTIONS,
            415: {
                "model": ErrorResponse,
                "description": "Body is not JSON, or is compressed.",
            },
        },
        openapi_extra=_JSON_BODY,
    )
    async def score_json(
        request: Request,
        explain: Annotated[
            bool, Query(description="Also return the channel attribution.")
        ] = True,
    ) -> ScoreResponse:
        """Score one recording sent as JSON, samples listed per channel name."""
        _check_json_content_type(request)
        _check_identity_encoding(request)
        body = await request.body()

        def handle() -> ScoreResponse:
            parsed = _parse_score_request(body, limits)
            recording = _recording_from_request(model, parsed, limits)
            return _score(model, recording, explain)

        return await run_in_threadpool(handle)

    @app.post(
        "/score/file",
        tags=["scoring"],
        dependencies=[Depends(authorize), Depends(_check_one_upload)],
        responses={
            **_REJECTIONS,
            415: {"model": ErrorResponse, "description": "Unsupported file type."},
        },
    )
    def score_file(
        file: Annotated[
            UploadFile,
            File(
                description="One recording in a format grindwatch reads, chosen by "
                f"the file name's extension ({', '.join(SIGNAL_SUFFIXES)}). It is "
                "read with the model's own reading options (delimiter, channels, "
                "sample rate for files that do not store one)."
            ),
        ],
        explain: Annotated[
            bool | None,
            Form(description="Also return the channel attribution (default true)."),
        ] = None,
        explain_query: Annotated[
            bool | None,
            Query(
                alias="explain",
                description="The same as the form field explain, for clients that "
                "pass it in the query as POST /score takes it.",
            ),
        ] = None,
    ) -> ScoreResponse:
        """Score one recording uploaded as a file."""
        if explain is not None and explain_query is not None:
            if explain != explain_query:
                raise _Rejected(
                    422,
                    f"explain is {str(explain).lower()} in the form and "
                    f"{str(explain_query).lower()} in the query; send it once",
                )
        chosen = next((v for v in (explain, explain_query) if v is not None), True)
        recording = _recording_from_upload(model, file, limits)
        return _score(model, recording, chosen)


async def _check_one_upload(request: Request) -> None:
    """Reject a form with several parts named ``file``.

    FastAPI 0.165.0 binds the first of them to the ``file`` parameter, so without this
    check the other recordings would get no score and no error.
    """
    form = await request.form()
    count = len(form.getlist("file"))
    if count > 1:
        raise _Rejected(
            422,
            f"body.file: the form contains {count} parts named 'file'; send one "
            "recording per request",
        )


def _validation_message(error: RequestValidationError, shown: int = 5) -> str:
    """FastAPI's validation errors as one sentence per problem, at most ``shown``."""
    problems = [_problem_text(item) for item in error.errors()]
    message = "; ".join(problems[:shown])
    if len(problems) > shown:
        message += f"; and {len(problems) - shown} more"
    return message


def _problem_text(item: dict[str, Any]) -> str:
    """Format one validation problem as 'location: message', with an upload's fix.

    FastAPI reports a missing upload as "Field required", and a form field sent
    as text (``curl -F 'file=<cycle.csv'``) as "Expected UploadFile, received:
    <class 'str'>", and neither message shows the client how to send the file.
    """
    location = ".".join(map(str, item["loc"]))
    upload_problem = item["type"] in ("missing", "value_error")
    if tuple(item["loc"]) == ("body", "file") and upload_problem:
        return (
            f"{location}: no file upload in the form field 'file'; send the "
            "recording as multipart/form-data, as a file with its file name, "
            "e.g. curl -F 'file=@cycle.csv' http://HOST:PORT/score/file"
        )
    return f"{location}: {item['msg']}"


def _watcher_lifespan(watcher: Watcher | None, interval: float, state: dict):  # noqa: ANN202
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if watcher is None:
            yield
            return
        stop = threading.Event()
        thread = threading.Thread(
            target=_run_watcher,
            args=(watcher, interval, stop),
            name="grindwatch-watcher",
            daemon=True,
        )
        thread.start()
        state["watcher_thread"] = thread
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=60)

    return lifespan


def _run_watcher(watcher: Watcher, interval: float, stop: threading.Event) -> None:
    """Run the watcher until ``stop`` is set, logging the error that ends it early.

    The watcher stores a file that fails to read or score as failed and goes on,
    so an error here comes from elsewhere, such as a results database that can no
    longer be written. The service keeps responding, and ``/health`` then reports
    ``watching: false``.
    """
    try:
        watcher.run(interval=interval, stop=stop)
    except Exception:
        logger.exception(
            "the folder watcher of %s stopped on an unexpected error; new files "
            "are not scored until the service is restarted",
            watcher.folder,
        )


def _bearer_check(token: str | None):  # noqa: ANN202
    scheme = HTTPBearer(
        auto_error=False,
        description="Required when the service was started with a token.",
    )
    expected = token.encode() if token else None

    # A plain default rather than Annotated: the annotation is a string (postponed
    # evaluation), and FastAPI could not resolve the local ``scheme`` inside it.
    def authorize(
        credentials: HTTPAuthorizationCredentials | None = Depends(scheme),  # noqa: B008
    ) -> None:
        if expected is None:
            return
        given = credentials.credentials.encode() if credentials else b""
        # compare_digest takes the same time wherever the first difference is.
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401,
                "missing or wrong bearer token; send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return authorize


def _model_info(model: Model, name: str, version: str | None) -> ModelInfo:
    described = model.describe()
    aggregate = model.config.aggregate
    fingerprint = described["training_data"]
    return ModelInfo(
        name=name,
        version=version or model.run_id_,
        run_id=model.run_id_,
        grindwatch_version=described["grindwatch_version"],
        service_version=__version__,
        channels=list(model.channels_),
        sample_rate=model.sample_rate_,
        window_length=model.window_length_,
        hop=model.hop_,
        frontend=described["frontend"],
        detector=described["detector"],
        aggregate=aggregate.method
        + (f":{aggregate.quantile:g}" if aggregate.method == "quantile" else ""),
        threshold=model.threshold_.value,
        threshold_method=model.threshold_.method,
        threshold_description=described["threshold_description"],
        cycle_threshold=(
            None if model.cycle_check is None else model.cycle_check.threshold_.value
        ),
        cycle_check_description=(
            None if model.cycle_check is None else model.cycle_check.describe()
        ),
        training_data=TrainingData(
            sha256=fingerprint.get("sha256"),
            n_files=fingerprint.get("n_files"),
            n_recordings=fingerprint.get("n_trained", fingerprint.get("n_recordings")),
        ),
    )


# Turning requests into recordings ----------------------------------------------------


def _recording_from_request(
    model: Model, request: ScoreRequest, limits: ServiceLimits
) -> Recording:
    """Check a JSON recording against the model and convert it to float32."""
    expected = list(model.channels_)
    missing = [channel for channel in expected if channel not in request.channels]
    if missing:
        raise _Rejected(
            422,
            f"the recording is missing channels {shorten_list(missing)}; it has "
            f"{shorten_list(list(request.channels))} and the model needs "
            f"{shorten_list(expected)}"
            f"{lookalike_names(missing, list(request.channels))}; send every channel "
            "in expected_channels, keyed by its name",
            missing_channels=missing,
            expected_channels=expected,
        )
    lengths = {channel: len(request.channels[channel]) for channel in expected}
    longest = max(lengths.values())
    if longest > limits.max_samples:
        raise _Rejected(
            413,
            f"{longest} samples per channel is more than the limit of "
            f"{limits.max_samples}; split the recording",
        )
    if len(set(lengths.values())) > 1:
        raise _Rejected(
            422,
            f"channels have different lengths {lengths}; send the same number of "
            "samples for every channel",
        )
    _check_rate(model, request.sample_rate, longest, limits)

    data = np.array([request.channels[channel] for channel in expected], np.float64)
    if data.size and np.abs(data).max() > _FLOAT32_MAX:
        raise _Rejected(
            422,
            f"a sample exceeds the float32 range (±{_FLOAT32_MAX:.4g}); rescale the "
            "signal",
        )
    rate = model.sample_rate_
    if model.config.data.resample and request.sample_rate is not None:
        rate = request.sample_rate
    recording = Recording(request.name, data.astype(np.float32), expected, rate)
    if recording.n_samples == 0:
        return recording  # scoring rejects it as shorter than one window
    # The readers apply data.constant_policy and data.clipping_policy to every
    # file, so an upload and the same samples sent as JSON get the same response.
    options = scoring_options(model)
    try:
        return check_quality(
            recording, options.constant_policy, options.clipping_policy, set()
        )
    except InputError as error:
        raise _Rejected(422, _upload_message(request.name, error)) from None


def _check_rate(
    model: Model,
    sample_rate: float | None,
    n_samples: int,
    limits: ServiceLimits,
    prefix: str = "",
) -> None:
    if sample_rate is None or model.sample_rate_ is None:
        return
    if model.config.data.resample:
        # Scoring resamples the recording to the model's rate, as 'score' does.
        # Both ends are checked before resampling, because the memory it takes
        # grows with the rate ratio: 200 samples at 1 Hz became 8.8 million at
        # 44.1 kHz, and the filter for 1 THz to 44.1 kHz took 3.4 GiB.
        # Kept a float, because a rate such as 1e-306 makes it infinite.
        resampled = n_samples * model.sample_rate_ / sample_rate
        if resampled < model.window_length_:
            raise _Rejected(
                422,
                f"{prefix}{n_samples} samples per channel at {sample_rate:g} Hz are "
                f"{resampled:.6g} samples at the model's {model.sample_rate_:g} Hz, "
                f"fewer than one window of {model.window_length_}; send a longer "
                "recording, or check sample_rate",
            )
        if resampled > limits.max_samples:
            raise _Rejected(
                413,
                f"{prefix}{n_samples} samples per channel at {sample_rate:g} Hz are "
                f"{resampled:.6g} samples at the model's {model.sample_rate_:g} Hz, "
                f"more than the limit of {limits.max_samples}; split the "
                "recording, or send it at the model's rate",
            )
        return
    if not np.isclose(sample_rate, model.sample_rate_):
        raise _Rejected(
            422,
            f"sample_rate {sample_rate:g} Hz differs from the model's "
            f"{model.sample_rate_:g} Hz; resample the recording to "
            f"{model.sample_rate_:g} Hz, serve a model trained at this rate, or "
            "start the service with --set data.resample=true",
        )


def _recording_from_upload(
    model: Model, upload: UploadFile, limits: ServiceLimits
) -> Recording:
    """Read an uploaded recording and check it against the model."""
    filename = Path(upload.filename or "").name
    recording = _read_upload(model, upload, filename, limits)

    # Formats without a header check, such as WAV and TDMS, are checked here.
    _check_channels(filename, len(recording.channels), limits)
    if recording.n_samples > limits.max_samples:
        raise _Rejected(
            413,
            f"{filename}: {recording.n_samples} samples per channel is more than the "
            f"limit of {limits.max_samples}; split the recording",
        )
    missing = [c for c in model.channels_ if c not in recording.channels]
    if missing:
        raise _Rejected(
            422,
            f"{filename}: missing channels {shorten_list(missing)}; it has "
            f"{shorten_list(recording.channels)} and the model needs "
            f"{shorten_list(model.channels_)}"
            f"{lookalike_names(missing, recording.channels)}; "
            + missing_channels_fix(
                recording.channels,
                "name the file's channels as in expected_channels, or serve a model "
                "trained on these channels",
            ),
            missing_channels=missing,
            expected_channels=list(model.channels_),
        )
    _check_rate(
        model, recording.sample_rate, recording.n_samples, limits, f"{filename}: "
    )
    recording.source = None
    return recording


def _read_upload(
    model: Model, upload: UploadFile, filename: str, limits: ServiceLimits
) -> Recording:
    """Save an upload under its own file name in a temporary folder and read it."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SIGNAL_SUFFIXES:
        raise _Rejected(
            415,
            f"unsupported file type {suffix or '(none)'!r} in {filename!r}; send one "
            f"of {', '.join(SIGNAL_SUFFIXES)}",
        )

    # The upload is saved under its own name, which the file system must accept.
    # 255 bytes is the name limit of the usual Linux file systems (ext4, XFS, Btrfs).
    if "\x00" in filename or len(filename.encode("utf-8", "surrogatepass")) > 255:
        raise _Rejected(
            422,
            f"the file name {filename[:60]!r} is longer than 255 bytes or contains a "
            "NUL character; send the file under a shorter name",
        )

    with tempfile.TemporaryDirectory(prefix="grindwatch-upload-") as folder:
        path = Path(folder) / filename
        with open(path, "wb") as out:
            while block := upload.file.read(1 << 20):
                out.write(block)
        options = scoring_options(model)
        _check_declared_size(path, filename, options, limits)
        try:
            recordings = read_file(path, options)
        except TimeColumnRateError as error:
            # The reader's fix (unset data.sample_rate) would only lead to the
            # model's own rate check, so the client gets that check's fix.
            file_rate, model_rate = error.time_column_rate, error.configured_rate
            raise _Rejected(
                422,
                f"{filename}: the time column gives {file_rate:g} samples/s but the "
                f"model reads recordings at {model_rate:g} samples/s; resample the "
                f"recording to {model_rate:g} samples/s or correct its time column",
            ) from None
        except InputError as error:
            raise _Rejected(422, _upload_message(filename, error)) from None
        except (OSError, ValueError) as error:
            # Format libraries raise their own errors on corrupt files.
            raise _Rejected(
                422, f"{filename}: could not be read ({type(error).__name__}: {error})"
            ) from None

    if len(recordings) != 1:
        raise _Rejected(
            422, f"{filename}: contains {len(recordings)} recordings; send one"
        )
    return recordings[0]


def _check_declared_size(
    path: Path, filename: str, options: ReadOptions, limits: ServiceLimits
) -> None:
    """Reject an upload whose header declares more samples or channels than allowed.

    Parquet, .npz, HDF5 and MATLAB files can be compressed, so the body limit
    does not bound the memory that reading them takes. A 220 kB Parquet file of
    zeros held 20 million rows, and reading it took 0.7 GB of memory and 12 s
    before the sample limit rejected it (one measurement, pyarrow 25). So the
    shapes in their headers are checked before the data is read. For text files
    the separators of the first lines give the channel count, because 100,000
    columns of two rows took 30 s to read. Files whose header cannot be parsed
    are left to the reader, which reports them.

    NOTE: the samples of all channels together are bounded only by max_samples
    times max_channels, so a compressed file within both limits can still take
    many GB.
    """
    try:
        suffix = path.suffix.lower()
        if suffix in (".csv", ".txt"):
            _check_channels(filename, _text_channels(path, options), limits)
            return
        if suffix in (".parquet", ".pq"):
            _check_table(path, filename, limits)
            return
        shapes = _declared_shapes(path)
        if shapes is None:
            return
        vectors = 0
        for index, (name, shape, numeric) in enumerate(shapes):
            if index >= _MAX_DECLARED_ARRAYS:
                raise _Rejected(
                    413,
                    f"{filename}: holds more than {_MAX_DECLARED_ARRAYS} arrays, "
                    "counting struct fields and cells; send one recording",
                )
            axes = [axis for axis in shape if axis != 1]
            if not axes:
                continue
            if max(axes) > limits.max_samples:
                raise _Rejected(
                    413,
                    f"{filename}: array {name!r} has {max(axes)} samples per "
                    f"channel, more than the limit of {limits.max_samples}; split "
                    "the recording",
                )
            if not numeric:
                continue
            if len(axes) == 1:
                vectors += 1
                _check_channels(filename, vectors, limits, "the file has at least ")
            else:
                channels = math.prod(axes) // max(axes)
                _check_channels(filename, channels, limits, f"array {name!r} has ")
    except _HEADER_ERRORS as error:
        logger.debug(
            "could not parse the header of %s, so the reader checks it: %s",
            filename,
            error,
        )


def _check_table(path: Path, filename: str, limits: ServiceLimits) -> None:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    if metadata.num_rows > limits.max_samples:
        raise _Rejected(
            413,
            f"{filename}: {metadata.num_rows} samples per channel is more than the "
            f"limit of {limits.max_samples}; split the recording",
        )
    _check_channels(filename, metadata.num_columns, limits)


def _check_channels(
    filename: str, channels: int, limits: ServiceLimits, subject: str = "the file has "
) -> None:
    if channels > limits.max_channels:
        raise _Rejected(
            413,
            f"{filename}: {subject}{channels} channels, more than the limit of "
            f"{limits.max_channels}; send only the channels the model uses",
        )


# An array's name, its shape and whether it is numeric.
_Shape = tuple[str, tuple[int, ...], bool]
# Arrays in one file, counting struct fields and cells: far more than a
# recording has channels. Walking the headers of 200,000 cells took 2 s in one
# measurement, so a file of many tiny arrays is rejected in about a second.
_MAX_DECLARED_ARRAYS = 100_000
_HEADER_ERRORS = (
    OSError,
    ValueError,
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    struct.error,
)
# Bytes of a text file read for its channel count, and lines of them counted.
_TEXT_HEAD_BYTES = 1 << 20
_TEXT_HEAD_LINES = 8


def _text_channels(path: Path, options: ReadOptions) -> int:
    """Return the largest field count of the first lines of a text file.

    Without a configured delimiter each line counts its most frequent separator
    of comma, semicolon and tab, or its words when it has none of them. Lines
    starting with ``#`` are comments. A line longer than the bytes read counts
    the fields in its start, so the result never exceeds the fields on a line.
    """
    with open(path, "rb") as stream:
        head = stream.read(_TEXT_HEAD_BYTES).decode("utf-8", "replace")
    lines = [line for line in head.splitlines() if not line.startswith("#")]
    widest = 0
    for line in lines[:_TEXT_HEAD_LINES]:
        if options.delimiter is not None and options.delimiter.strip():
            fields = line.count(options.delimiter) + 1
        elif any(separator in line for separator in ",;\t"):
            fields = max(line.count(separator) for separator in ",;\t") + 1
        else:
            fields = len(line.split())
        widest = max(widest, fields)
    return widest


def _declared_shapes(path: Path) -> Iterator[_Shape] | None:
    """Return the array shapes that a compressed file's header declares.

    Each shape comes with its array's name and whether the array is numeric,
    and so may hold channels.
    For .npz, HDF5 and MATLAB files every array counts, including the fields of
    MATLAB v5 structs and the contents of cell arrays. Returns None for other
    formats. The shapes of MATLAB v5 files are read as they are used, so a check
    that rejects one stops before the rest of the file is decompressed.
    """
    suffix = path.suffix.lower()
    if suffix == ".mat":
        import h5py

        if h5py.is_hdf5(path):
            return iter(_hdf5_shapes(path))
        return _mat_v5_shapes(path)
    if suffix == ".npz":
        with zipfile.ZipFile(path) as archive:
            return iter(_npz_shapes(archive))
    if suffix in (".h5", ".hdf5", ".hdf"):
        return iter(_hdf5_shapes(path))
    return None


# Type codes of MATLAB v5 data elements and the array classes the shape walk
# descends into: cell arrays, structs and objects.
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MX_CELL, _MX_STRUCT, _MX_OBJECT = 1, 2, 3
# Numeric array classes, from double to uint64. Other arrays, such as char
# arrays, count toward the sample limit but are not channels.
_MX_DOUBLE, _MX_UINT64 = 6, 15
# Arrays nested deeper than this are left to the reader.
_MAT_MAX_DEPTH = 32


def _mat_v5_shapes(path: Path) -> Iterator[_Shape]:
    """Yield the shape of every array in a MATLAB v5 file, from element headers.

    Each variable's element starts with its class and dimensions. A struct's
    fields and a cell array's contents are elements of their own, nested in it,
    so they are walked the same way. Numeric data is skipped, not read, and of a
    compressed element only the bytes up to the next header are decompressed.

    Raises
    ------
    ValueError
        If the file is not a MATLAB v5 file or an element does not parse.
    """
    with open(path, "rb") as stream:
        header = stream.read(128)
        order = {b"IM": "<", b"MI": ">"}.get(header[126:128])
        if order is None:
            raise ValueError("not a MATLAB v5 file")
        while len(tag := stream.read(8)) == 8:
            kind, size = struct.unpack(order + "II", tag)
            if kind >> 16:
                continue  # a small element: its data sits in the tag's 4 bytes
            if kind == _MI_COMPRESSED:
                inflated = _InflatedElement(stream, size)
                yield from _mat_matrix_shapes(inflated, order)
                inflated.close()
            elif kind == _MI_MATRIX:
                yield from _mat_matrix_body_shapes(stream, order, size, None, 0)
            else:
                stream.seek(size + (-size % 8), 1)


def _mat_matrix_shapes(stream: _InflatedElement, order: str) -> Iterator[_Shape]:
    """Yield the shapes of one miMATRIX element, read from its tag on."""
    tag = stream.read(8)
    if len(tag) < 8:
        raise ValueError("truncated element")
    kind, size = struct.unpack(order + "II", tag)
    if kind != _MI_MATRIX:
        raise ValueError(f"element type {kind} where an array belongs")
    yield from _mat_matrix_body_shapes(stream, order, size, None, 0)


def _mat_matrix_body_shapes(
    stream: _InflatedElement | BinaryIO,
    order: str,
    size: int,
    name: str | None,
    depth: int,
) -> Iterator[_Shape]:
    """Yield the shapes in a miMATRIX element's ``size`` bytes and skip the rest.

    The element contains array flags, dimensions and name, then, for cell arrays,
    one nested element per cell, and for structs and objects one per field of
    each struct, after the field names. ``name`` is the path of a nested array,
    such as ``run.data`` or ``cells{2}``, and None for a variable, whose element
    stores its name.
    """
    if size == 0:
        yield name or "(unnamed)", (0,), False  # an empty array
        return
    if depth > _MAT_MAX_DEPTH:
        raise ValueError(f"arrays nested more than {_MAT_MAX_DEPTH} deep")
    consumed = 0

    def read_part() -> bytes:
        nonlocal consumed
        tag = stream.read(8)
        if len(tag) < 8:
            raise ValueError("truncated element")
        kind, length = struct.unpack(order + "II", tag)
        if kind >> 16:
            consumed += 8
            return tag[4 : 4 + (kind >> 16)]
        padded = length + (-length % 8)
        if consumed + 8 + padded > size:
            raise ValueError("a part is longer than its array element")
        consumed += 8 + padded
        data = stream.read(padded)
        if len(data) < padded:
            raise ValueError("truncated element")
        return data[:length]

    flags = read_part()
    dims_data = read_part()
    if len(flags) < 8:
        raise ValueError("invalid array flags")
    array_class = struct.unpack(order + "I", flags[:4])[0] & 0xFF
    dims = struct.unpack(
        order + f"{len(dims_data) // 4}i", dims_data[: len(dims_data) // 4 * 4]
    )
    if any(axis < 0 for axis in dims):
        raise ValueError("negative dimension")
    stored_name = read_part().decode("latin-1")
    if name is None:
        name = stored_name
    yield name, dims, _MX_DOUBLE <= array_class <= _MX_UINT64
    count = math.prod(dims)
    if array_class == _MX_CELL:
        children = (f"{name}{{{index + 1}}}" for index in range(count))
    elif array_class in (_MX_STRUCT, _MX_OBJECT):
        if array_class == _MX_OBJECT:
            read_part()  # the class name
        name_length = read_part()
        names = read_part()
        field_length = struct.unpack(order + "i", name_length[:4])[0]
        if field_length <= 0:
            raise ValueError("invalid field name length")
        fields = [
            names[start : start + field_length].rstrip(b"\0").decode("latin-1")
            for start in range(0, len(names) - field_length + 1, field_length)
        ]
        element = "" if count == 1 else "({})"
        children = (
            f"{name}{element.format(index + 1)}.{field}"
            for index in range(count)
            for field in fields
        )
    else:
        children = iter(())
    for child in children:
        start = consumed
        tag = stream.read(8)
        if len(tag) < 8:
            raise ValueError("truncated element")
        kind, length = struct.unpack(order + "II", tag)
        if kind != _MI_MATRIX or consumed + 8 + length > size:
            raise ValueError("invalid nested array element")
        yield from _mat_matrix_body_shapes(stream, order, length, child, depth + 1)
        consumed = start + 8 + length + (-length % 8)
    # The nested calls skipped their own elements, and this skips the data of
    # a numeric array and the padding.
    _skip(stream, size + (-size % 8) - consumed)


class _InflatedElement:
    """A compressed MATLAB element, decompressed only as far as it is read."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._source = stream
        self._left = size
        self._inflater = zlib.decompressobj()
        self._buffer = b""
        self._offset = 0

    def read(self, count: int) -> bytes:
        # Headers are read 8 bytes at a time, so the buffer is filled in blocks
        # and read from an offset, not sliced off.
        while len(self._buffer) - self._offset < count:
            more = self._inflate(max(count, 1 << 16))
            if not more:
                break
            self._buffer = self._buffer[self._offset :] + more
            self._offset = 0
        data = self._buffer[self._offset : self._offset + count]
        self._offset += len(data)
        return data

    def skip(self, count: int) -> None:
        """Decompress and drop ``count`` bytes, 1 MiB at a time."""
        buffered = min(count, len(self._buffer) - self._offset)
        self._offset += buffered
        count -= buffered
        while count > 0:
            more = self._inflate(min(count, 1 << 20))
            if not more:
                return
            count -= len(more)

    def close(self) -> None:
        """Move the file to the end of the compressed element."""
        self._source.seek(self._left, 1)
        self._left = 0

    def _inflate(self, limit: int) -> bytes:
        """Return up to ``limit`` more decompressed bytes, or b"" at the end."""
        while not self._inflater.eof:
            if self._inflater.unconsumed_tail:
                chunk = self._inflater.unconsumed_tail
            elif self._left > 0:
                chunk = self._source.read(min(self._left, 1 << 16))
                self._left -= len(chunk)
                if not chunk:
                    self._left = 0
                    return b""
            else:
                return b""
            data = self._inflater.decompress(chunk, limit)
            if data:
                return data
        return b""


def _skip(stream: _InflatedElement | BinaryIO, count: int) -> None:
    if isinstance(stream, _InflatedElement):
        stream.skip(count)
    else:
        stream.seek(count, 1)


def _npz_shapes(archive: zipfile.ZipFile) -> list[_Shape]:
    """Return the shapes of the arrays in an .npz archive, from their headers.

    Only each member's header is decompressed, not its data.
    """
    shapes = []
    for member in archive.infolist():
        with archive.open(member) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(stream)
            else:
                header = np.lib.format.read_array_header_2_0(stream)
        shape, dtype = header[0], header[2]
        shapes.append(
            (member.filename.removesuffix(".npy"), shape, dtype.kind in "biuf")
        )
    return shapes


def _hdf5_shapes(path: Path) -> list[_Shape]:
    """Return the shapes of the datasets in an HDF5 file, from its metadata."""
    import h5py

    shapes: list[_Shape] = []

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset) and item.shape:
            shapes.append((name, item.shape, item.dtype.kind in "biuf"))

    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    return shapes


def _upload_message(filename: str, error: InputError) -> str:
    """Format a reader's error with the upload's name, not its temporary path.

    A fix that names a reading setting (``--set data.encoding=...``,
    ``constant_policy: warn``, ``set raw_dtype``) is a change to the server, which
    the client cannot make, so the message marks it.
    """
    fix = error.fix or ""
    if _SERVER_SETTING.search(fix):
        fix += " (settings of the server: start 'grindwatch serve' with them)"
    return f"{filename}: {error.problem}" + (f"; {fix}" if fix else "")


def _score(model: Model, recording: Recording, explain: bool) -> ScoreResponse:
    try:
        cycle = score_recording(model, recording, explain=explain)
    except InputError as error:
        raise _Rejected(422, _upload_message(recording.name, error)) from None
    logger.debug("scored %s: %.4g, flag %s", cycle.name, cycle.score, cycle.flag)
    return _response(cycle)


def _response(cycle: CycleScore) -> ScoreResponse:
    windows = cycle.windows
    has_time = "start_s" in windows
    window_scores = [
        WindowScore(
            window=int(row["window"]),
            start_sample=int(row["start_sample"]),
            start_s=float(row["start_s"]) if has_time else None,
            end_s=float(row["end_s"]) if has_time else None,
            score=float(row["score"]),
            flag=bool(row["flag"]),
        )
        for row in windows.to_dict(orient="records")
    ]
    attribution = None
    if cycle.channel_shares is not None:
        attribution = Attribution(
            top_channel=cycle.top_channel(),
            channels=_ranked(cycle.channel_shares),
            flagged_windows=[
                FlaggedWindow(
                    window=item["window"],
                    score=item["score"],
                    channels=_ranked(item["channel_shares"]),
                )
                for item in cycle.flagged_window_shares()
            ],
        )
    return ScoreResponse(
        recording=RecordingScore(
            name=cycle.name,
            score=cycle.score,
            flag=cycle.flag,
            n_windows=cycle.n_windows,
            flagged_windows=cycle.flagged_windows,
            max_window_score=cycle.max_window_score,
            cycle_score=None if cycle.cycle is None else cycle.cycle.score,
            cycle_flag=None if cycle.cycle is None else cycle.cycle.flag,
            cycle_channel=None if cycle.cycle is None else cycle.cycle.channel,
            cycle_reason=None if cycle.cycle is None else cycle.cycle.reason,
        ),
        threshold=cycle.threshold,
        windows=window_scores,
        attribution=attribution,
    )


def _ranked(shares: dict[str, float]) -> list[ChannelShare]:
    ordered = sorted(shares.items(), key=lambda item: item[1], reverse=True)
    return [ChannelShare(channel=channel, share=share) for channel, share in ordered]


# Monitoring page ---------------------------------------------------------------------


def _add_dashboard(
    app: FastAPI,
    model: Model,
    name: str,
    store: ResultStore | None,
    watcher: Watcher | None,
    authorize: Any,
) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/cycles/{result_id}", include_in_schema=False)
    def cycle_page(result_id: int) -> FileResponse:
        return FileResponse(STATIC / "cycle.html")

    @app.get(
        "/api/cycles",
        tags=["monitoring"],
        dependencies=[Depends(authorize)],
        responses={401: _REJECTIONS[401], 422: _INVALID_PARAMETER},
    )
    def list_cycles(
        limit: Annotated[
            int, Query(ge=1, le=5000, description="Most recent results to return.")
        ] = 200,
    ) -> CycleList:
        """List the latest results of the folder watcher, oldest first."""
        rows = store.latest(limit) if store is not None else []
        return CycleList(
            model=name,
            threshold=model.threshold_.value,
            results_store=store is not None,
            cycles=[CycleSummary.model_validate(row) for row in rows],
            notice=watcher.run_notice if watcher is not None else None,
        )

    @app.get(
        "/api/cycles/{result_id}",
        tags=["monitoring"],
        dependencies=[Depends(authorize)],
        responses={
            401: _REJECTIONS[401],
            404: {"model": ErrorResponse, "description": "No result with this id."},
            422: _INVALID_PARAMETER,
        },
    )
    def get_cycle(
        result_id: Annotated[
            int, PathParameter(ge=1, le=2**63 - 1, description="Result id.")
        ],
    ) -> CycleDetail:
        """Return one stored result with its window scores and channel shares."""
        found = store.get(result_id) if store is not None else None
        if found is None:
            raise _Rejected(404, f"no result with id {result_id}")
        return CycleDetail.model_validate(found)
