"""The REST scoring service: scores, validation, limits, token and OpenAPI schema."""

from __future__ import annotations

import gzip
import json
import logging
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from typer.testing import CliRunner

import grindwatch
from grindwatch.cli import _register_extensions
from grindwatch.cli import app as cli_app
from grindwatch.exceptions import ConfigError
from grindwatch.io import read_file
from grindwatch.serve import ServiceLimits, create_app
from grindwatch.watch import ResultStore, Watcher
from tests.conftest import make_cycle, write_cycles
from tests.servetools import (
    free_port,
    grindwatch_command,
    restored_logging,  # noqa: F401 - a fixture
    running,
    train_small,
)

CHANNELS = ["vib_x", "vib_y", "current"]
JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("serve")
    write_cycles(root / "good", 8)
    write_cycles(root / "bad", 1, start_seed=100, anomaly="spike")
    result = train_small(root / "good", output=root / "bundle")
    return {"root": root, "model": result.model, "bundle": root / "bundle"}


@pytest.fixture(scope="module")
def client(trained: dict) -> TestClient:
    return TestClient(create_app(trained["model"], name="small"))


def _body(data: np.ndarray, channels=CHANNELS, **extra) -> dict:  # noqa: ANN001, ANN003
    return {"channels": {c: data[i].tolist() for i, c in enumerate(channels)}, **extra}


def test_health_is_open_and_ok(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["model_loaded"] is True


def test_model_endpoint_describes_model(client, trained):
    info = client.get("/model").json()

    model = trained["model"]
    assert info["name"] == "small"
    assert info["channels"] == CHANNELS
    assert info["sample_rate"] == pytest.approx(1000.0)
    assert info["window_length"] == 256
    assert info["threshold"] == model.threshold_.value
    assert info["training_data"]["sha256"] == model.fingerprint_["sha256"]
    assert info["training_data"]["n_files"] == 8


def test_score_json_matches_python_api(client, trained):
    path = trained["root"] / "bad" / "cycle_100.csv"
    data = read_file(path)[0].data

    response = client.post("/score", json=_body(data, name="cycle_100"))
    expected = grindwatch.score(trained["model"], path)

    assert response.status_code == 200
    body = response.json()
    windows = [w["score"] for w in body["windows"]]
    assert windows == expected.windows["score"].tolist()
    assert body["recording"]["score"] == expected.recordings["score"].iloc[0]
    assert body["recording"]["flag"] is True
    assert body["threshold"] == expected.threshold


def test_attribution_names_faulty_channel(client, trained):
    data = read_file(trained["root"] / "bad" / "cycle_100.csv")[0].data

    body = client.post("/score", json=_body(data)).json()

    attribution = body["attribution"]
    # The spike fixture adds noise to vib_y only.
    assert attribution["top_channel"] == "vib_y"
    assert sum(item["share"] for item in attribution["channels"]) == pytest.approx(1)
    assert len(attribution["flagged_windows"]) == body["recording"]["flagged_windows"]
    assert attribution["flagged_windows"][0]["channels"][0]["channel"] == "vib_y"


def test_score_without_explain_has_no_attribution(client):
    response = client.post("/score?explain=false", json=_body(make_cycle(3)))

    assert response.status_code == 200
    assert response.json()["attribution"] is None


def test_channels_matched_by_name_in_any_order(client):
    data = make_cycle(5)
    in_order = client.post("/score", json=_body(data)).json()

    reordered = {
        "channels": {c: data[CHANNELS.index(c)].tolist() for c in reversed(CHANNELS)}
    }
    reordered["channels"]["spare"] = [0.0] * data.shape[1]
    response = client.post("/score", json=reordered)

    assert response.status_code == 200
    assert response.json()["windows"] == in_order["windows"]


def test_missing_channels_rejected_with_names(client):
    data = make_cycle(5)

    response = client.post("/score", json=_body(data[:1], channels=["vib_x"]))

    assert response.status_code == 422
    assert response.json()["missing_channels"] == ["vib_y", "current"]
    assert response.json()["expected_channels"] == CHANNELS
    assert "send every channel in expected_channels" in response.json()["detail"]


def test_channel_names_with_spaces_shown(client, tmp_path):
    data = make_cycle(5)
    names = ["vib_x", "vib_y", "current "]
    path = tmp_path / "spaced.npz"
    np.savez(path, data=data, channels=np.array(names), sample_rate=1000.0)

    sent = client.post("/score", json=_body(data, channels=names))
    upload = client.post("/score/file", files={"file": (path.name, path.read_bytes())})

    for response in (sent, upload):
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert "differ only in spaces" in detail
        assert "'current' expected, 'current ' found" in detail
    assert "it has ['vib_x', 'vib_y', 'current ']" in sent.json()["detail"]


def test_wrong_sample_rate_rejected(client):
    response = client.post("/score", json=_body(make_cycle(5), sample_rate=2000))

    assert response.status_code == 422
    assert "2000 Hz differs from the model's 1000 Hz" in response.json()["detail"]


def test_matching_sample_rate_accepted(client):
    response = client.post("/score", json=_body(make_cycle(5), sample_rate=1000.0))

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # A string where a number belongs.
        (b'{"channels": {"vib_x": ["1.0"]}}', "valid number"),
        # NaN is not JSON, but Python's parser accepts it.
        (b'{"channels": {"vib_x": [NaN]}}', "finite number"),
        (b'{"channels": {"vib_x": [true]}}', "valid number"),
        (b'{"channels": {}}', "at least 1 item"),
        (b'{"channels": {"vib_x": [1]}, "extra": 1}', "Extra inputs"),
        (b"not json", "Invalid JSON"),
    ],
)
def test_malformed_body_rejected(client, raw, message):
    response = client.post(
        "/score", content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_json_with_byte_order_mark_scored(client):
    body = json.dumps(_body(make_cycle(5))).encode()

    plain = client.post("/score", content=body, headers=JSON_HEADERS)
    marked = client.post("/score", content=b"\xef\xbb\xbf" + body, headers=JSON_HEADERS)

    assert plain.status_code == 200, plain.text
    assert marked.status_code == 200, marked.text
    assert marked.json() == plain.json()


def test_compressed_json_gets_415(client):
    body = gzip.compress(json.dumps(_body(make_cycle(5))).encode())
    headers = {**JSON_HEADERS, "Content-Encoding": "gzip"}

    response = client.post("/score", content=body, headers=headers)

    assert response.status_code == 415
    assert response.json()["detail"] == (
        "Content-Encoding 'gzip' is not supported; send the body uncompressed, "
        "without a Content-Encoding header"
    )


def test_float32_overflow_rejected(client):
    data = make_cycle(5).astype(np.float64)
    data[0, 10] = 1e39

    response = client.post("/score", json=_body(data))

    assert response.status_code == 422
    assert "float32 range" in response.json()["detail"]


def test_unequal_channel_lengths_rejected(client):
    body = _body(make_cycle(5))
    body["channels"]["current"] = body["channels"]["current"][:-1]

    response = client.post("/score", json=body)

    assert response.status_code == 422
    assert "different lengths" in response.json()["detail"]


def test_recording_shorter_than_window_rejected(client):
    response = client.post("/score", json=_body(make_cycle(5)[:, :100]))

    assert response.status_code == 422
    assert "fewer than one window of 256" in response.json()["detail"]


def test_body_over_limit_gets_413(trained):
    limited = TestClient(
        create_app(trained["model"], limits=ServiceLimits(max_body_bytes=10_000))
    )

    response = limited.post("/score", json=_body(make_cycle(5)))
    upload = limited.post("/score/file", files={"file": ("a.npy", b"0" * 20_000)})
    streamed = limited.post(
        "/score",
        content=(b" " * 1000 for _ in range(20)),
        headers={"content-type": "application/json"},
    )

    for rejected in (response, upload, streamed):
        assert rejected.status_code == 413
        assert "limit of 10000 bytes" in rejected.json()["detail"]
    assert "request body of" in response.json()["detail"]


def test_json_body_needs_json_content_type(client):
    body = json.dumps(_body(make_cycle(5)))

    plain = client.post("/score", content=body, headers={"content-type": "text/plain"})
    missing = client.post("/score", content=body)
    declared = client.post(
        "/score",
        content=body,
        headers={"content-type": "application/json; charset=utf-8"},
    )

    for rejected in (plain, missing):
        assert rejected.status_code == 415
        assert "Content-Type: application/json" in rejected.json()["detail"]
    assert "'text/plain'" in plain.json()["detail"]
    assert declared.status_code == 200


def test_samples_over_limit_get_413(trained):
    limited = TestClient(
        create_app(trained["model"], limits=ServiceLimits(max_samples=1000))
    )

    response = limited.post("/score", json=_body(make_cycle(5)))

    assert response.status_code == 413
    assert "limit of 1000" in response.json()["detail"]


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        (ServiceLimits(max_channels=2), "channel limit 2 is less than the 3 channels"),
        (ServiceLimits(max_samples=255), "sample limit 255 is less than one window"),
    ],
    ids=["channels", "samples"],
)
def test_limits_below_model_needs_rejected(trained, limits, problem):
    with pytest.raises(ConfigError) as rejected:
        create_app(trained["model"], limits=limits)

    assert problem in str(rejected.value)
    assert "every request would be rejected" in str(rejected.value)


def test_limits_equal_to_model_needs_accepted(trained):
    limits = ServiceLimits(max_channels=3, max_samples=256)
    exact = TestClient(create_app(trained["model"], limits=limits))

    response = exact.post("/score", json=_body(make_cycle(5)[:, :256]))

    assert response.status_code == 200
    assert response.json()["recording"]["n_windows"] == 1


@pytest.mark.parametrize("suffix", [".parquet", ".npz", ".h5", ".mat"])
def test_compressed_upload_limited_before_read(trained, tmp_path, suffix):
    limited = TestClient(
        create_app(trained["model"], limits=ServiceLimits(max_samples=1000))
    )
    # The NaN samples would make reading the file fail with 422, so a 413 shows
    # that the header's sample count was checked before the data was read.
    data = np.full((3, 5000), np.nan, np.float32)
    path = tmp_path / f"compressed{suffix}"
    if suffix == ".parquet":
        pd.DataFrame(data.T, columns=CHANNELS).to_parquet(path)
    elif suffix == ".npz":
        np.savez_compressed(path, data=data, channels=np.array(CHANNELS))
    elif suffix == ".mat":
        import scipy.io

        scipy.io.savemat(path, {"data": data, "fs": 1000.0}, do_compression=True)
    else:
        import h5py

        with h5py.File(path, "w") as handle:
            dataset = handle.create_dataset("data", data=data, compression="gzip")
            dataset.attrs["channels"] = CHANNELS

    response = limited.post(
        "/score/file", files={"file": (path.name, path.read_bytes())}
    )

    assert response.status_code == 413, response.text
    subject = "" if suffix == ".parquet" else "array 'data' has "
    verb = "," if subject else " is"
    assert response.json()["detail"] == (
        f"{path.name}: {subject}5000 samples per channel{verb} more than the limit "
        "of 1000; split the recording"
    )


def test_mat_header_gives_array_shapes(tmp_path):
    import h5py
    import scipy.io

    from grindwatch.serve import _declared_shapes

    plain = tmp_path / "plain.mat"
    scipy.io.savemat(plain, {"a": np.zeros((3, 500)), "b": np.ones((2, 7000))})
    v73 = tmp_path / "v73.mat"
    with h5py.File(v73, "w") as handle:
        handle["x"] = np.zeros((2, 4321))
    nested = tmp_path / "nested.mat"
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0] = np.zeros((3, 700))
    cells[0, 1] = "abc"
    run = {"data": np.zeros((3, 4000)), "inner": {"deep": np.zeros((2, 123))}}
    scipy.io.savemat(nested, {"run": run, "c": cells}, do_compression=True)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a MATLAB file")

    assert list(_declared_shapes(plain)) == [
        ("a", (3, 500), True),
        ("b", (2, 7000), True),
    ]
    assert list(_declared_shapes(v73)) == [("x", (2, 4321), True)]
    assert list(_declared_shapes(nested)) == [
        ("run", (1, 1), False),
        ("run.data", (3, 4000), True),
        ("run.inner", (1, 1), False),
        ("run.inner.deep", (2, 123), True),
        ("c", (1, 2), False),
        ("c{1}", (3, 700), True),
        ("c{2}", (1, 3), False),
    ]
    with pytest.raises(ValueError, match="not a MATLAB v5 file"):
        list(_declared_shapes(junk))


@pytest.mark.parametrize(
    ("variables", "array"),
    [
        ({"run": {"data": "NAN", "fs": 1000.0}}, "run.data"),
        ({"run": {"meta": {"signal": "NAN"}}}, "run.meta.signal"),
        ({"cells": "CELL"}, "cells{2}"),
    ],
)
def test_mat_struct_field_limited_before_read(trained, tmp_path, variables, array):
    import scipy.io

    limited = TestClient(
        create_app(trained["model"], limits=ServiceLimits(max_samples=1000))
    )
    # NaN samples make reading fail with 422, so a 413 shows that the field's
    # size was checked before scipy read the data.
    signal = np.full((3, 5000), np.nan)
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0] = np.zeros((3, 10))
    cells[0, 1] = signal

    def fill(value):  # noqa: ANN001, ANN202
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        return {"NAN": signal, "CELL": cells}.get(value, value)

    path = tmp_path / "nested.mat"
    scipy.io.savemat(path, fill(variables), do_compression=True)

    response = limited.post(
        "/score/file", files={"file": (path.name, path.read_bytes())}
    )

    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        f"nested.mat: array {array!r} has 5000 samples per channel, more than the "
        "limit of 1000; split the recording"
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npz", ".mat", ".wav"])
def test_upload_channels_over_limit_get_413(trained, tmp_path, suffix):
    limited = TestClient(
        create_app(trained["model"], limits=ServiceLimits(max_channels=10))
    )
    # The model's channels and 9 more, with NaN samples that make reading fail
    # with 422, so a 413 shows that the header's channel count came first. WAV
    # has no header check and contains integers, so it is counted after reading.
    names = [*CHANNELS, *(f"extra_{i}" for i in range(9))]
    count = len(names)
    data = np.full((len(names), 500), np.nan, np.float32)
    path = tmp_path / f"wide{suffix}"
    subject = "the file has "
    if suffix == ".csv":
        pd.DataFrame(data.T, columns=names).to_csv(path, index=False)
    elif suffix == ".parquet":
        pd.DataFrame(data.T, columns=names).to_parquet(path)
    elif suffix == ".npz":
        np.savez_compressed(path, data=data)
        subject = "array 'data' has "
    elif suffix == ".mat":
        import scipy.io

        # Vectors are counted as they are found, up to one over the limit.
        subject = "the file has at least "
        count = 11
        run = {name: data[i] for i, name in enumerate(names)}
        scipy.io.savemat(path, {"run": run, "fs": 1000.0}, do_compression=True)
    else:
        import scipy.io.wavfile

        scipy.io.wavfile.write(path, 1000, np.zeros((500, len(names)), np.int16))

    response = limited.post(
        "/score/file", files={"file": (path.name, path.read_bytes())}
    )

    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        f"{path.name}: {subject}{count} channels, more than the limit of 10; send only "
        "the channels the model uses"
    )


def test_csv_channel_count_ignores_quoted_header(trained, tmp_path):
    limited = TestClient(
        create_app(trained["model"], limits=ServiceLimits(max_channels=3))
    )
    path = tmp_path / "cycle.csv"
    pd.DataFrame(make_cycle(5).T, columns=CHANNELS).to_csv(path, index=False)
    text = "# recorded on line 4, spindle 2, feed 0.1, coolant on\n" + path.read_text()
    path.write_text(text)

    response = limited.post("/score/file", files={"file": (path.name, text)})

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("channels", "max_samples"),
    [
        ({f"c{i}": [1.0] for i in range(11)}, 1000),
        # Strings where arrays belong count as channels too, when the body has
        # more commas than max_samples, so that its arrays are counted. The
        # service rejects a max_samples below the model's window of 256.
        ({f"c{i}": "x" for i in range(300)}, 256),
    ],
)
def test_json_channels_over_limit_get_413(trained, channels, max_samples):
    limits = ServiceLimits(max_samples=max_samples, max_channels=10)
    limited = TestClient(create_app(trained["model"], limits=limits))

    response = limited.post("/score", json={"channels": channels})

    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        "the request body contains more than 10 channels, the limit; send only the "
        "channels the model uses"
    )


def test_json_samples_counted_before_parse(trained):
    limited = TestClient(
        create_app(trained["model"], limits=ServiceLimits(max_samples=1000))
    )
    # A boolean sample makes parsing fail with 422, so a 413 shows that the
    # samples were counted before the body was parsed.
    samples = ", ".join(["0.5"] * 1499 + ["true"])
    body = '{"channels": {"vib_x": [1], "vib_y" :\n [' + samples + "]}}"

    response = limited.post("/score", content=body, headers=JSON_HEADERS)

    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        "the request body: channel 'vib_y' has 1500 samples, more than the limit "
        "of 1000 per channel; split the recording"
    )


def test_json_count_skips_names_with_brackets(trained):
    # Exactly max_samples per channel, with commas and brackets in the names,
    # and more commas in the body than max_samples, so every array is counted.
    limited = TestClient(
        create_app(trained["model"], limits=ServiceLimits(max_samples=2048))
    )
    data = make_cycle(5)
    body = _body(data, name='run [3, "b"], ]')
    body["channels"]["odd [,,] name"] = [0.0] * 2048

    response = limited.post("/score", json=body)

    assert response.status_code == 200, response.text
    assert response.json()["recording"]["name"] == 'run [3, "b"], ]'


def test_serve_command_applies_size_limits(trained, tmp_path):
    port = free_port()
    command = grindwatch_command(
        "serve", "--model", str(trained["bundle"]), "--port", str(port)
    ) + ["--max-channels", "4", "--max-samples", "3000"]
    url = f"http://127.0.0.1:{port}"
    wide = _body(make_cycle(5)[:, :300])
    wide["channels"].update({"extra_1": [0.0] * 300, "extra_2": [0.0] * 300})
    long = _body(make_cycle(5, n_samples=3001))
    statuses, details = [], []

    with running(command, tmp_path / "serve.log", f"{url}/health"):
        for body in (wide, long):
            request = urllib.request.Request(
                f"{url}/score", data=json.dumps(body).encode(), headers=JSON_HEADERS
            )
            with pytest.raises(urllib.error.HTTPError) as rejected:
                urllib.request.urlopen(request)
            statuses.append(rejected.value.code)
            details.append(json.loads(rejected.value.read())["detail"])

    assert statuses == [413, 413]
    assert "more than 4 channels" in details[0]
    assert "channel 'vib_x' has 3001 samples" in details[1]
    assert "limit of 3000 per channel" in details[1]


def test_upload_scores_like_json(client, trained):
    path = trained["root"] / "bad" / "cycle_100.csv"
    data = read_file(path)[0].data

    upload = {"file": (path.name, path.read_bytes())}
    uploaded = client.post("/score/file", files=upload)
    sent = client.post("/score", json=_body(data))

    assert uploaded.status_code == 200
    assert uploaded.json()["recording"]["name"] == "cycle_100"
    assert uploaded.json()["windows"] == sent.json()["windows"]


def test_upload_npz_format(client, tmp_path):
    data = make_cycle(9)
    path = tmp_path / "cycle.npz"
    np.savez(path, data=data, channels=np.array(CHANNELS), sample_rate=1000.0)

    upload = {"file": (path.name, path.read_bytes())}
    response = client.post("/score/file", files=upload)

    assert response.status_code == 200
    assert response.json()["recording"]["n_windows"] == 8


@pytest.mark.parametrize(
    "request_parts",
    [
        {"data": {"file": "vib_x,vib_y,current\n1,2,3\n"}},
        {"files": {"upload": ("cycle.csv", b"vib_x,vib_y,current\n1,2,3\n")}},
        {"content": b"vib_x,vib_y,current\n1,2,3\n"},
    ],
    ids=["text field", "other field", "raw body"],
)
def test_upload_without_file_explains_fix(client, request_parts):
    response = client.post("/score/file", **request_parts)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("body.file: no file upload in the form field 'file'")
    assert "curl -F 'file=@cycle.csv'" in detail


def test_upload_of_two_files_rejected(client, trained):
    path = trained["root"] / "bad" / "cycle_100.csv"
    content = path.read_bytes()
    parts = [("file", ("first.csv", content)), ("file", ("second.csv", content))]

    response = client.post("/score/file", files=parts)

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "body.file: the form contains 2 parts named 'file'; send one recording "
        "per request"
    )


@pytest.mark.parametrize(
    ("query", "form", "explained"),
    [
        ("", {}, True),
        ("?explain=false", {}, False),
        ("", {"explain": "false"}, False),
        ("?explain=true", {"explain": "true"}, True),
    ],
    ids=["default", "query", "form", "both"],
)
def test_upload_explain_query_or_form(client, trained, query, form, explained):
    path = trained["root"] / "bad" / "cycle_100.csv"
    upload = {"file": (path.name, path.read_bytes())}

    response = client.post(f"/score/file{query}", files=upload, data=form)

    assert response.status_code == 200, response.text
    assert (response.json()["attribution"] is not None) == explained


def test_upload_explain_conflict_rejected(client, trained):
    path = trained["root"] / "bad" / "cycle_100.csv"
    upload = {"file": (path.name, path.read_bytes())}

    response = client.post(
        "/score/file?explain=false", files=upload, data={"explain": "true"}
    )

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "explain is true in the form and false in the query; send it once"
    )


def test_json_file_key_stays_extra_input(client):
    body = {**_body(make_cycle(5)), "file": "cycle.csv"}

    response = client.post("/score", json=body)

    assert response.status_code == 422
    assert response.json()["detail"] == "body.file: Extra inputs are not permitted"


def test_upload_unsupported_type_gets_415(client):
    response = client.post("/score/file", files={"file": ("cycle.docx", b"abc")})

    assert response.status_code == 415
    assert "unsupported file type '.docx'" in response.json()["detail"]


@pytest.mark.parametrize("filename", [b"a" * 300 + b".csv", b"cycle\x00.csv"])
def test_upload_unusable_file_name_gets_422(client, trained, filename):
    source = trained["root"] / "bad" / "cycle_100.csv"
    # Built by hand, because httpx escapes a NUL character in a file name.
    body = (
        b'--XB\r\nContent-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: text/csv\r\n\r\n'
        + source.read_bytes()
        + b"\r\n--XB--\r\n"
    )

    response = client.post(
        "/score/file",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=XB"},
    )

    assert response.status_code == 422
    assert "send the file under a shorter name" in response.json()["detail"]


def test_upload_error_marks_fixes_as_server_settings(client, trained):
    source = trained["root"] / "bad" / "cycle_100.csv"
    text = source.read_text().replace("vib_x", "vib_x \u00b0", 1)

    upload = {"file": ("latin.csv", text.encode("latin-1"))}
    response = client.post("/score/file", files=upload)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("latin.csv: ")
    assert "data.encoding" in detail
    assert "settings of the server: start 'grindwatch serve' with them" in detail


def test_upload_setting_fix_marked_server(client):
    upload = {"file": ("cycle.bin", np.zeros(3000, np.float32).tobytes())}

    response = client.post("/score/file", files=upload)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("cycle.bin: is a headerless binary file")
    assert "set raw_dtype" in detail
    assert "settings of the server: start 'grindwatch serve' with them" in detail


def test_upload_missing_channel_names_them(client, trained, tmp_path):
    source = trained["root"] / "bad" / "cycle_100.csv"
    path = tmp_path / "partial.csv"
    pd.read_csv(source).drop(columns="current").to_csv(path, index=False)

    upload = {"file": (path.name, path.read_bytes())}
    response = client.post("/score/file", files=upload)

    detail = response.json()["detail"]
    assert response.status_code == 422
    assert response.json()["missing_channels"] == ["current"]
    assert "name the file's channels as in expected_channels" in detail


def test_upload_unnamed_channels_says_how(client, tmp_path):
    path = tmp_path / "unnamed.npz"
    np.savez(path, data=make_cycle(9), sample_rate=1000.0)

    upload = {"file": (path.name, path.read_bytes())}
    response = client.post("/score/file", files=upload)

    detail = response.json()["detail"]
    assert response.status_code == 422
    assert response.json()["missing_channels"] == CHANNELS
    assert "it has ['channel_0', 'channel_1', 'channel_2']" in detail
    assert "this file stores no channel names" in detail
    assert "a 'channels' array in .npz" in detail
    assert "serve a model trained on these channels" not in detail


def test_upload_wrong_rate_rejected(client, tmp_path):
    data = make_cycle(9)
    path = tmp_path / "fast.npz"
    np.savez(path, data=data, channels=np.array(CHANNELS), sample_rate=4000.0)

    upload = {"file": (path.name, path.read_bytes())}
    response = client.post("/score/file", files=upload)

    assert response.status_code == 422
    assert "4000 Hz differs" in response.json()["detail"]


def test_upload_time_column_rate_mismatch(trained, tmp_path):
    import copy

    model = copy.deepcopy(trained["model"])
    model.config = model.config.with_overrides({"data.sample_rate": 1000.0})
    client = TestClient(create_app(model))
    frame = pd.read_csv(trained["root"] / "bad" / "cycle_100.csv")
    frame["time"] = frame["time"] * 2
    path = tmp_path / "slow.csv"
    frame.to_csv(path, index=False)

    response = client.post(
        "/score/file", files={"file": (path.name, path.read_bytes())}
    )

    detail = response.json()["detail"]
    assert response.status_code == 422
    assert detail.startswith("slow.csv: the time column gives 500 samples/s but ")
    assert "the model reads recordings at 1000 samples/s" in detail
    assert "resample the recording to 1000 samples/s" in detail
    assert "data.sample_rate=null" not in detail


def test_other_rate_resampled_when_set(trained, tmp_path):
    import copy

    from scipy.signal import resample_poly

    model = copy.deepcopy(trained["model"])
    model.config = model.config.with_overrides({"data.resample": True})
    data = resample_poly(make_cycle(9), 2, 1, axis=1).astype(np.float32)
    path = tmp_path / "fast.npz"
    np.savez(path, data=data, channels=np.array(CHANNELS), sample_rate=2000.0)
    expected = grindwatch.score(model, path).recordings.iloc[0]
    client = TestClient(create_app(model))

    upload = client.post("/score/file", files={"file": (path.name, path.read_bytes())})
    sent = client.post("/score", json=_body(data, sample_rate=2000.0))

    assert upload.status_code == 200, upload.text
    assert sent.status_code == 200, sent.text
    for response in (upload, sent):
        recording = response.json()["recording"]
        assert recording["n_windows"] == expected["n_windows"]
        assert recording["score"] == pytest.approx(expected["score"], rel=1e-5)


@pytest.mark.parametrize(
    ("policy", "damage", "problem"),
    [
        ("constant_policy", "constant", "channel 'vib_y' is constant"),
        ("clipping_policy", "clipped", "channel 'vib_y' is clipped"),
    ],
)
def test_json_applies_quality_policies(trained, tmp_path, policy, damage, problem):
    import copy

    model = copy.deepcopy(trained["model"])
    model.config = model.config.with_overrides({f"data.{policy}": "raise"})
    data = make_cycle(11)
    if damage == "constant":
        data[1] = 0.0
    else:
        data[1] = np.clip(data[1], -0.3, 0.3)
    path = tmp_path / "damaged.npz"
    np.savez(path, data=data, channels=np.array(CHANNELS), sample_rate=1000.0)
    client = TestClient(create_app(model))

    upload = client.post("/score/file", files={"file": (path.name, path.read_bytes())})
    sent = client.post("/score", json=_body(data, name="damaged"))

    assert upload.status_code == 422, upload.text
    assert sent.status_code == 422, sent.text
    detail = sent.json()["detail"]
    assert detail.startswith(f"damaged: {problem}")
    assert f"set {policy}: warn" in detail
    assert "settings of the server: start 'grindwatch serve' with them" in detail


@pytest.mark.parametrize("sample_rate", [True, "2000"])
def test_sample_rate_must_be_number(trained, sample_rate):
    import copy

    model = copy.deepcopy(trained["model"])
    model.config = model.config.with_overrides({"data.resample": True})
    client = TestClient(create_app(model))

    response = client.post("/score", json=_body(make_cycle(9), sample_rate=sample_rate))

    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "body.sample_rate: Input should be a valid number"
    )


def test_resampled_length_checked_first(trained, tmp_path):
    # Resampling 200 samples from 1 Hz to the model's 1 kHz makes 200,000, and
    # the filter from 1 THz takes GiB, so both are rejected before scoring.
    import copy

    model = copy.deepcopy(trained["model"])
    model.config = model.config.with_overrides({"data.resample": True})
    client = TestClient(create_app(model, limits=ServiceLimits(max_samples=50_000)))
    path = tmp_path / "slow.npz"
    short = make_cycle(3, 200)
    np.savez(path, data=short, channels=np.array(CHANNELS), sample_rate=1.0)
    upload = {"file": (path.name, path.read_bytes())}

    upsampled = client.post("/score", json=_body(short, sample_rate=1.0))
    uploaded = client.post("/score/file", files=upload)
    shrunk = client.post("/score", json=_body(make_cycle(3), sample_rate=1e12))
    endless = client.post("/score", json=_body(short, sample_rate=1e-306))

    assert upsampled.status_code == 413, upsampled.text
    assert "are 200000 samples at the model's 1000 Hz" in upsampled.json()["detail"]
    assert uploaded.status_code == 413, uploaded.text
    assert uploaded.json()["detail"].startswith("slow.npz: 200 samples")
    assert shrunk.status_code == 422, shrunk.text
    assert "fewer than one window" in shrunk.json()["detail"]
    assert endless.status_code == 413, endless.text
    assert "are inf samples" in endless.json()["detail"]


def test_corrupt_upload_gets_422(client):
    response = client.post("/score/file", files={"file": ("cycle.npy", b"\x93NUMPY")})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("cycle.npy:")


def test_token_required_and_never_logged(trained, caplog):
    token = "s3cret-token-value"
    guarded = TestClient(create_app(trained["model"], token=token))
    body = _body(make_cycle(5))
    caplog.set_level(logging.DEBUG)

    missing = guarded.post("/score", json=body)
    wrong = guarded.post("/score", json=body, headers={"Authorization": "Bearer nope"})
    right = guarded.post(
        "/score", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    health = guarded.get("/health")

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert health.status_code == 200
    assert guarded.get("/model").status_code == 401
    assert guarded.get("/api/cycles").status_code == 401
    assert token not in caplog.text


def test_openapi_documents_every_field(client):
    schema = client.get("/openapi.json").json()

    undocumented = []
    ours = (
        "ScoreRequest",
        "ScoreResponse",
        "ModelInfo",
        "Health",
        "ErrorResponse",
        "CycleList",
        "CycleDetail",
        "WindowScore",
        "Attribution",
    )
    for name in ours:
        component = schema["components"]["schemas"][name]
        for field, spec in component["properties"].items():
            if "description" not in spec and "$ref" not in json.dumps(spec):
                undocumented.append(f"{name}.{field}")
    assert undocumented == []
    assert "/score" in schema["paths"]
    assert "413" in schema["paths"]["/score"]["post"]["responses"]


def test_service_runs_watcher_and_lists_cycles(trained, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    watcher = Watcher(
        trained["model"], folder, ResultStore(tmp_path / "r.sqlite"), settle_seconds=0
    )
    app = create_app(trained["model"], watcher=watcher, watch_interval=0.1)

    with TestClient(app) as service:
        # With settle_seconds=0 the watcher takes a file as soon as it appears, so
        # write it elsewhere and move it in whole, as a careful producer would.
        (staged,) = write_cycles(
            tmp_path / "staging", 1, start_seed=100, anomaly="spike"
        )
        staged.replace(folder / staged.name)
        deadline = time.monotonic() + 30
        listed = service.get("/api/cycles").json()
        while not listed["cycles"] and time.monotonic() < deadline:
            time.sleep(0.1)
            listed = service.get("/api/cycles").json()
        health = service.get("/health").json()
        result_id = listed["cycles"][0]["id"]
        detail = service.get(f"/api/cycles/{result_id}").json()
        page = service.get(f"/cycles/{result_id}")
        unknown = service.get("/api/cycles/999")

    assert health["watching"] is True
    assert listed["results_store"] is True
    assert listed["cycles"][0]["path"] == "cycle_100.csv"
    assert listed["cycles"][0]["current_path"] == "cycle_100.csv"
    assert listed["cycles"][0]["source"] == str((folder / "cycle_100.csv").absolute())
    assert listed["cycles"][0]["flag"] is True
    assert detail["top_channel"] == "vib_y"
    assert len(detail["windows"]) == 8
    assert page.status_code == 200
    assert "/static/cycle.js" in page.text
    assert unknown.status_code == 404


def _wait_for_cycles(service: TestClient, count: int) -> list[dict]:
    deadline = time.monotonic() + 30
    cycles = service.get("/api/cycles").json()["cycles"]
    while len(cycles) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        cycles = service.get("/api/cycles").json()["cycles"]
    return cycles


def test_service_watcher_survives_reader_bug(trained, tmp_path, monkeypatch):
    from grindwatch import watch

    real_read_file = watch.read_file

    def read_file(path, options):  # noqa: ANN001, ANN202
        if Path(path).name == "cycle_060.csv":
            raise TypeError("boolean value of NA is ambiguous")
        return real_read_file(path, options)

    monkeypatch.setattr(watch, "read_file", read_file)
    folder = tmp_path / "incoming"
    folder.mkdir()
    watcher = Watcher(
        trained["model"], folder, ResultStore(tmp_path / "r.sqlite"), settle_seconds=0
    )
    app = create_app(trained["model"], watcher=watcher, watch_interval=0.1)

    first, second = write_cycles(tmp_path / "staging", 2, start_seed=60)

    with TestClient(app) as service:
        # The second file lands after the watcher has failed on the first.
        first.replace(folder / first.name)
        _wait_for_cycles(service, 1)
        second.replace(folder / second.name)
        cycles = _wait_for_cycles(service, 2)
        health = service.get("/health").json()

    statuses = {cycle["path"]: cycle["status"] for cycle in cycles}
    assert statuses == {"cycle_060.csv": "failed", "cycle_061.csv": "scored"}
    assert health["watching"] is True


def test_health_reports_stopped_watcher(trained, tmp_path, monkeypatch, caplog):
    folder = tmp_path / "incoming"
    folder.mkdir()
    watcher = Watcher(
        trained["model"], folder, ResultStore(tmp_path / "r.sqlite"), settle_seconds=0
    )

    def poll() -> list[int]:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(watcher, "poll", poll)
    app = create_app(trained["model"], watcher=watcher, watch_interval=0.1)

    with caplog.at_level(logging.ERROR, logger="grindwatch.serve"):
        with TestClient(app) as service:
            deadline = time.monotonic() + 30
            health = service.get("/health").json()
            while health["watching"] and time.monotonic() < deadline:
                time.sleep(0.1)
                health = service.get("/health").json()

    assert health["status"] == "ok"
    assert health["watching"] is False
    assert "folder watcher of" in caplog.text
    assert "disk I/O error" in caplog.text


@pytest.fixture
def api_schema(trained, tmp_path):
    """The service with a results store holding one scored and one failed file."""
    folder = tmp_path / "incoming"
    write_cycles(folder, 1, start_seed=40)
    (folder / "broken.csv").write_text("no,numbers\nhere,at all\n")
    store = ResultStore(tmp_path / "results.sqlite")
    Watcher(trained["model"], folder, store, settle_seconds=0).poll()
    app = create_app(
        trained["model"], store=store, limits=ServiceLimits(max_samples=50_000)
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_has_no_server_errors(api_schema, mode):
    # schemathesis' own pytest plugin fails under pytest 9 (it reads a removed
    # attribute of test items), so its strategy drives a plain Hypothesis test.
    @given(case=api_schema.as_strategy(mode))
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case) -> None:  # noqa: ANN001
        response = case.call()
        assert response.status_code < 500, (case.method, case.path, response.text)

    call()


@pytest.mark.usefixtures("restored_logging")
def test_scores_identical_across_interfaces(trained, tmp_path, monkeypatch):
    """CLI, Python API, REST service and `mlflow models serve` give the same scores."""
    # `mlflow models serve` downloads the model to a temporary folder that it
    # leaves behind; keep it inside the test's folder.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    result = train_small(trained["root"] / "good", tracking=True)
    uri = f"runs:/{result.run_id}/model"
    path = trained["root"] / "bad" / "cycle_100.csv"
    data = read_file(path)[0].data
    model = grindwatch.load_model(uri)

    api = grindwatch.score(model, path)
    cli = CliRunner().invoke(
        cli_app, ["score", str(path), "--model", uri, "--output", "cli.csv"]
    )
    rest = TestClient(create_app(model)).post("/score", json=_body(data)).json()
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with running(command, tmp_path / "mlflow.log", f"http://127.0.0.1:{port}/ping"):
        split = {"dataframe_split": {"columns": CHANNELS, "data": data.T.tolist()}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(split).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            served = json.loads(response.read())["predictions"]

    assert cli.exit_code == 0, cli.output
    expected = api.windows["score"].tolist()
    assert pd.read_csv("cli.windows.csv")["score"].tolist() == expected
    assert pd.read_csv("cli.csv")["score"].iloc[0] == api.recordings["score"].iloc[0]
    assert [w["score"] for w in rest["windows"]] == expected
    assert rest["recording"]["score"] == api.recordings["score"].iloc[0]
    assert [row["score"] for row in served] == expected
    table = pd.read_csv("cli.csv").iloc[0]
    top = rest["attribution"]["channels"][0]
    assert top["channel"] == table["top_channel"] == rest["attribution"]["top_channel"]
    assert top["share"] == pytest.approx(table["top_channel_share"], abs=1e-3)
    assert [row["flag"] for row in served] == api.windows["flag"].tolist()


def test_model_name_and_version_from_registry(trained):
    from mlflow import MlflowClient, register_model

    from grindwatch.cli_serve import _model_identity

    result = train_small(trained["root"] / "good", tracking=True)
    register_model(f"runs:/{result.run_id}/model", "grinder-7")
    MlflowClient().set_registered_model_alias("grinder-7", "live", "1")

    by_alias = _model_identity("models:/grinder-7@live", None)
    by_version = _model_identity("models:/grinder-7/1", None)
    renamed = _model_identity("models:/grinder-7/1", "line 2")
    folder = _model_identity(str(trained["bundle"]), None)

    assert by_alias == ("grinder-7", "1")
    assert by_version == ("grinder-7", "1")
    assert renamed == ("line 2", "1")
    assert folder == (str(trained["bundle"]), None)


@pytest.mark.usefixtures("restored_logging")
def test_serve_rejects_foreign_address(trained):
    _register_extensions()
    # 192.0.2.1 is a documentation address that no local interface has, so the
    # bind fails locally without sending a packet.
    result = CliRunner().invoke(
        cli_app,
        ["serve", "--model", str(trained["bundle"]), "--host", "192.0.2.1"]
        + ["--port", str(free_port())],
    )

    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1, result.output
    assert "cannot listen on 192.0.2.1: the address cannot be bound" in result.output
    assert "pass --host 127.0.0.1 or an address of this machine" in result.output
    assert "in use" not in result.output


@pytest.mark.usefixtures("restored_logging")
def test_serve_warns_of_missing_results(trained, tmp_path):
    _register_extensions()
    missing = tmp_path / "resutls.sqlite"
    # The bind to a documentation address fails after the results store opens,
    # so the command ends without serving.
    result = CliRunner().invoke(
        cli_app,
        ["serve", "--model", str(trained["bundle"]), "--host", "192.0.2.1"]
        + ["--port", str(free_port()), "--results", str(missing)],
    )
    output = " ".join(result.output.split())

    assert result.exit_code == 2, result.output
    assert "resutls.sqlite does not exist" in output
    assert "lists no cycles until 'grindwatch watch --results" in output


@pytest.mark.usefixtures("restored_logging")
def test_serve_quiet_about_existing_results(trained, tmp_path):
    _register_extensions()
    ResultStore(tmp_path / "results.sqlite")
    result = CliRunner().invoke(
        cli_app,
        ["serve", "--model", str(trained["bundle"]), "--host", "192.0.2.1"]
        + ["--port", str(free_port()), "--results", str(tmp_path / "results.sqlite")],
    )

    assert result.exit_code == 2, result.output
    assert "does not exist" not in result.output


def test_serve_command_listens_on_loopback(trained, tmp_path):
    port = free_port()
    command = grindwatch_command(
        "serve", "--model", str(trained["bundle"]), "--port", str(port)
    )

    with running(command, tmp_path / "serve.log", f"http://127.0.0.1:{port}/health"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/model") as response:
            info = json.loads(response.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
            page = response.read().decode()

    assert info["name"] == str(trained["bundle"])
    assert info["channels"] == CHANNELS
    assert "/static/dashboard.js" in page
    assert Path(tmp_path / "serve.log").read_text().count("Serving") == 1


def test_serve_log_escapes_line_breaks(trained, tmp_path):
    port = free_port()
    command = grindwatch_command(
        "serve", "--model", str(trained["bundle"]), "--port", str(port), "-v"
    )
    forged = "2026-01-01T00:00:00Z WARNING  ALARM forged"
    body = json.dumps(_body(make_cycle(5)[:, :10], name=f"cycle_7\n{forged}"))
    log = tmp_path / "serve.log"

    with running(command, log, f"http://127.0.0.1:{port}/health"):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/score",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as rejected:
            urllib.request.urlopen(request)

    assert rejected.value.code == 422
    lines = log.read_text().splitlines()
    assert not [line for line in lines if line.startswith(forged)]
    assert [line for line in lines if f"cycle_7\\n{forged}: has 10" in line]


@pytest.mark.usefixtures("restored_logging")
def test_serve_rejects_zero_body_limit(trained):
    _register_extensions()
    # Without the check, the bind to a documentation address fails instead.
    result = CliRunner().invoke(
        cli_app,
        ["serve", "--model", str(trained["bundle"]), "--host", "192.0.2.1"]
        + ["--port", str(free_port()), "--max-body-mb", "0"],
    )

    assert result.exit_code == 2, result.output
    assert "--max-body-mb 0 is less than one byte" in " ".join(result.output.split())
