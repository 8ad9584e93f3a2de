"""The real service judged by clients no one here wrote: Triton's official HTTP client (JSON tensors and
the binary tensor extension), MLflow's own client-side serialisation of the /invocations formats and its
scoring-server client, and schemathesis over the whole OpenAPI document.

Two `shipyard serve` processes run for the module, on one store with a registered iris classifier and a
housing regressor: one with auth on (iris first, so /invocations scores iris), one with auth off (housing
first), which is how MLflow's clients, which send no token, meet a `mlflow models serve` replacement.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from shipyard.config import Settings
from tests.conftest import REPO, train_small_examples
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHIPYARD = str(Path(sys.executable).parent / "shipyard")
SECRET = "real-clients-" + "k" * 40
IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass
class Served:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    logfile: Path

    def log(self) -> str:
        return self.logfile.read_text()[-4000:]


@dataclass
class Store:
    home: Path
    settings: Settings


def _clean_env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING"))}
    return {**base, "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Store:
    """One embedded store with iris and housing registered (small forests), made once for the module."""

    home = tmp_path_factory.mktemp("real-clients")
    shutil.copy(migrated_store, home / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith(("SHIPYARD_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")):
                patch.delenv(key)
        patch.setitem(Settings.model_config, "env_file", None)
        settings = Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
        train_small_examples(settings, "real-clients")
    return Store(home, settings)


def _start(home: Path, models: str, env: dict[str, str]) -> Served:
    port = free_port()
    logfile = home / f"serve-{port}.log"
    with logfile.open("w") as log:
        proc = subprocess.Popen(
            [SHIPYARD, "serve", "--port", str(port), "--models", models],
            cwd=home,
            env={
                **_clean_env(),
                "SHIPYARD_HOME": str(home),
                "SHIPYARD_RELOAD_INTERVAL_SECONDS": "0",
                "SHIPYARD_PREDICTION_LOG_PATH": str(home / f"predictions-{port}.db"),
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Served(f"http://127.0.0.1:{port}", port, proc, logfile)


def _wait_ready(server: Served, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited: {server.log()}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server not ready after {timeout} s: {server.log()}")


def _stop(server: Served) -> None:
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()


@pytest.fixture(scope="module")
def servers(store: Store) -> Iterator[tuple[Served, Served]]:
    """Both processes started together (they load in parallel), stopped by PID afterwards."""
    secured = _start(store.home, "iris,housing", {"SHIPYARD_JWT_SECRET": SECRET})
    open_ = _start(store.home, "housing,iris", {"SHIPYARD_AUTH_ENABLED": "false"})
    try:
        _wait_ready(secured)
        _wait_ready(open_)
        yield secured, open_
    finally:
        _stop(secured)
        _stop(open_)
    for server in (secured, open_):  # no request of any client may have reached the generic 500
        assert "unexpected error" not in server.logfile.read_text(), server.log()


@pytest.fixture
def secured(servers: tuple[Served, Served]) -> Served:
    return servers[0]


@pytest.fixture
def open_server(servers: tuple[Served, Served]) -> Served:
    return servers[1]


def bearer(store: Store, *scopes: str) -> dict[str, str]:
    """An Authorization header with a fresh token, minted when the test runs (never at collection)."""
    from pydantic import SecretStr

    from shipyard.serving.auth import mint_token

    settings = store.settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})
    return {"Authorization": f"Bearer {mint_token(settings, 'real-clients', list(scopes), 900)}"}


@pytest.fixture
def auth(store: Store) -> dict[str, str]:
    """What a prediction client holds: a predict-scope token."""
    return bearer(store, "predict")


@pytest.fixture(scope="module")
def iris_rows() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    frame = pd.DataFrame(load_iris().data, columns=IRIS)
    return frame.iloc[::10].reset_index(drop=True)  # 15 rows across all three species


@pytest.fixture(scope="module")
def housing_rows() -> pd.DataFrame:
    """Real sales with their missing values (NaN numbers, None categories), as a client's frame holds them."""
    raw = pd.read_csv(REPO / "data/raw/housing.csv", keep_default_na=False, na_values=[""])
    features = [c for c in raw.columns if c not in ("order", "pid", "saleprice")]
    return raw[features].iloc[:40].reset_index(drop=True)


def pyfunc(store: Store, name: str) -> Any:
    """The champion as MLflow's own loader gives it. The tracking URI is set only while loading and then
    put back exactly as it was, unset included: ``mlflow.set_tracking_uri`` also exports
    MLFLOW_TRACKING_URI, which would send later tests' runs (and their subprocesses) to this store."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(store.settings.tracking_uri):
        return mlflow.pyfunc.load_model(f"models:/{name}@champion")


@pytest.fixture(scope="module")
def iris_model(store: Store) -> Any:
    return pyfunc(store, "iris")


@pytest.fixture(scope="module")
def housing_model(store: Store) -> Any:
    return pyfunc(store, "housing")


def mlflow_serves(model: Any, body: str, csv: bool = False) -> list[Any]:
    """What `mlflow models serve` answers for this body: MLflow's own server-side parser, then predict."""
    from mlflow.pyfunc import scoring_server

    schema = model.metadata.get_input_schema()
    if csv:
        data = scoring_server.parse_csv_input(io.StringIO(body), schema)
    else:
        data = scoring_server._parse_json_data(body, model.metadata, schema).data
    return list(pd.Series(model.predict(data)).tolist())


# --- tritonclient[http] ---------------------------------------------------------------------------------


def triton(server: Served) -> Any:
    import tritonclient.http as httpclient

    return httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=30)


def triton_inputs(frame: pd.DataFrame, metadata: dict[str, Any], binary: bool) -> list[Any]:
    """One tensor per feature, typed as the model's V2 metadata says (numbers as numbers, text as BYTES)."""
    import tritonclient.http as httpclient

    inputs = []
    for spec in metadata["inputs"]:
        column = frame[spec["name"]]
        if spec["datatype"] == "BYTES":
            array = np.array([str(v).encode() for v in column], dtype=np.object_)
        elif spec["datatype"] == "INT64":
            array = column.to_numpy(dtype=np.int64)
        elif spec["datatype"] == "BOOL":
            array = column.to_numpy(dtype=bool)
        else:
            array = column.to_numpy(dtype=np.float64)
        tensor = httpclient.InferInput(spec["name"], [len(frame)], spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_triton_client_sees_a_live_ready_server_with_the_binary_extension(secured: Served) -> None:
    client = triton(secured)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("housing")
    assert client.is_model_ready("iris", model_version="1")
    assert not client.is_model_ready("iris", model_version="7")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("iris")
    assert [i["name"] for i in metadata["inputs"]] == IRIS
    assert {i["datatype"] for i in metadata["inputs"]} == {"FP64"}
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]
    assert client.get_model_metadata("iris", model_version="1")["versions"] == ["1"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_client_infers_iris_like_the_model(
    secured: Served, auth: dict[str, str], iris_rows: pd.DataFrame, iris_model: Any, binary: bool
) -> None:
    import tritonclient.http as httpclient

    client = triton(secured)
    inputs = triton_inputs(iris_rows, client.get_model_metadata("iris"), binary)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=binary),
        httpclient.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer("iris", inputs, outputs=outputs, headers=auth, request_id="r-1")
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict").tolist()]
    assert labels == list(iris_model.predict(iris_rows))
    assert len(set(labels)) == 3
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (len(iris_rows), 3)
    assert np.allclose(proba.sum(axis=1), 1.0)
    classes = result.get_output("predict_proba")["parameters"]["classes"]
    assert [classes[i] for i in proba.argmax(axis=1)] == labels
    response = result.get_response()
    assert response["id"] == "r-1" and response["model_version"] == "1"
    if binary:
        assert result.get_output("predict")["parameters"]["binary_data_size"] > 0


def test_triton_client_may_send_float32_tensors(
    secured: Served, auth: dict[str, str], iris_rows: pd.DataFrame, iris_model: Any
) -> None:
    """NumPy's float32, the usual dtype of a Triton user's arrays, is read as the numbers it holds."""
    import tritonclient.http as httpclient

    client = triton(secured)
    inputs = []
    for name in IRIS:
        tensor = httpclient.InferInput(name, [len(iris_rows), 1], "FP32")
        tensor.set_data_from_numpy(iris_rows[[name]].to_numpy(dtype=np.float32), binary_data=True)
        inputs.append(tensor)
    result = client.infer("iris", inputs, outputs=[httpclient.InferRequestedOutput("predict")], headers=auth)
    rounded = iris_rows.astype(np.float32).astype(np.float64)
    assert [v.decode() for v in result.as_numpy("predict")] == list(iris_model.predict(rounded))


def test_binary_outputs_by_default_and_the_raw_wire_format(
    secured: Served, auth: dict[str, str], iris_rows: pd.DataFrame, iris_model: Any
) -> None:
    """No outputs named: tritonclient asks for all of them in binary; the answer is a JSON header of the
    stated length, then the tensors' bytes, as application/octet-stream."""
    client = triton(secured)
    inputs = triton_inputs(iris_rows.head(4), client.get_model_metadata("iris"), binary=True)
    result = client.infer("iris", inputs, headers=auth)
    assert [v.decode() for v in result.as_numpy("predict")] == list(iris_model.predict(iris_rows.head(4)))
    assert result.as_numpy("predict_proba").shape == (4, 3)

    from tritonclient.http._utils import _get_inference_request

    body, json_size = _get_inference_request(
        inputs=inputs, request_id="", outputs=None, sequence_id=0, sequence_start=False,
        sequence_end=False, priority=0, timeout=None, custom_parameters=None,
    )  # fmt: skip
    raw = httpx.post(
        f"{secured.url}/v2/models/iris/infer",
        content=body,
        headers={**auth, "Inference-Header-Content-Length": str(json_size)},
    )
    assert raw.status_code == 200, raw.text
    assert raw.headers["content-type"] == "application/octet-stream"
    length = int(raw.headers["inference-header-content-length"])
    header = json.loads(raw.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert len(raw.content) == length + sum(sizes)
    assert sizes[1] == 4 * 3 * 8  # 4 rows x 3 classes of FP64


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_client_infers_the_housing_regressor_with_text_features(
    secured: Served, auth: dict[str, str], housing_rows: pd.DataFrame, housing_model: Any, binary: bool
) -> None:
    import tritonclient.http as httpclient

    client = triton(secured)
    metadata = client.get_model_metadata("housing")
    assert {"BYTES", "FP64"} <= {i["datatype"] for i in metadata["inputs"]}
    # a tensor holds no missing values: take rows missing the same features, and leave those out
    pattern = housing_rows.isna()
    same = (pattern == pattern.iloc[0]).all(axis=1)
    rows = housing_rows[same].head(5)
    present = [c for c in rows.columns if rows[c].notna().all()]
    assert len(rows) >= 3 and len(present) < len(rows.columns)
    complete = rows[present]
    metadata = {"inputs": [i for i in metadata["inputs"] if i["name"] in present]}
    inputs = triton_inputs(complete, metadata, binary)
    result = client.infer(
        "housing",
        inputs,
        outputs=[httpclient.InferRequestedOutput("predict", binary_data=binary)],
        headers=auth,
    )
    got = result.as_numpy("predict").tolist()
    assert got == pytest.approx(list(housing_model.predict(rows)), rel=1e-9)
    assert result.get_output("predict_proba") is None


def test_triton_client_gets_clear_errors(
    secured: Served, auth: dict[str, str], iris_rows: pd.DataFrame
) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = triton(secured)
    inputs = triton_inputs(iris_rows.head(2), client.get_model_metadata("iris"), binary=True)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", inputs)  # no token
    assert caught.value.status() == "401"
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", inputs, headers=auth, model_version="9")
    assert caught.value.status() == "404" and "not served" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", inputs, outputs=[httpclient.InferRequestedOutput("logits")], headers=auth)
    assert caught.value.status() == "422" and "unknown output 'logits'" in caught.value.message()
    wrong = httpclient.InferInput("petal_colour", [2], "BYTES")
    wrong.set_data_from_numpy(np.array([b"blue", b"red"], dtype=np.object_), binary_data=True)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", [*inputs, wrong], headers=auth)
    assert caught.value.status() == "422" and "petal_colour" in caught.value.message()
    assert (
        client.infer("iris", inputs, headers=auth, model_version="1").get_response()["model_version"] == "1"
    )


# --- MLflow's client-side serialisation of the /invocations formats ------------------------------------


def mlflow_bodies(frame: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """The bodies MLflow's own helpers build for this frame, by format: (content type, body)."""
    from mlflow.models.python_api import _serialize_input_data
    from mlflow.models.utils import convert_input_example_to_serving_input
    from mlflow.utils.proto_json_utils import dump_input_data

    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    csv = _serialize_input_data(frame, "csv")
    assert isinstance(csv, str)
    return {
        # what `mlflow models predict` and `mlflow.models.predict` send for a DataFrame
        "dataframe_split": ("application/json", _serialize_input_data(frame, "json")),
        # what ScoringServerClient.invoke sends for a DataFrame (NaN literals for missing numbers)
        "dataframe_split_client": ("application/json", dump_input_data(frame)),
        "dataframe_records": ("application/json", dump_input_data(records, inputs_key="dataframe_records")),
        "instances": ("application/json", dump_input_data(records, inputs_key="instances")),
        # a dict of numpy columns, as MLflow turns an input example into a serving input
        "inputs": ("application/json", convert_input_example_to_serving_input(columns)),
        "csv": ("text/csv", csv),
    }


FORMATS = ["dataframe_split", "dataframe_split_client", "dataframe_records", "instances", "inputs", "csv"]


@pytest.mark.parametrize("kind", FORMATS)
def test_mlflow_serialised_iris_bodies_get_mlflows_answers(
    secured: Served, auth: dict[str, str], iris_rows: pd.DataFrame, iris_model: Any, kind: str
) -> None:
    content_type, body = mlflow_bodies(iris_rows)[kind]
    expected = mlflow_serves(iris_model, body, csv=kind == "csv")
    answer = httpx.post(
        f"{secured.url}/invocations", content=body, headers={**auth, "Content-Type": content_type}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected
    assert len(set(expected)) == 3


@pytest.mark.parametrize("kind", FORMATS)
def test_mlflow_serialised_housing_bodies_with_missing_values_get_the_models_answers(
    open_server: Served, housing_rows: pd.DataFrame, housing_model: Any, kind: str
) -> None:
    """MLflow's helpers write a missing value as a JSON NaN (``df.where(notnull, None)`` keeps NaN in
    float and string columns): the service reads NaN as missing, as `mlflow models serve` does.
    Expected: the model's answer for the frame as the data file reads it. MLflow's own server is no
    reference here: it reads 'instances' with missing values into arrays of 0-d arrays, a column missing
    in every record as None objects (which the pipeline's imputer does not take for missing), and CSV
    cells 'None' and 'NA' (real categories of this data) as missing."""
    content_type, body = mlflow_bodies(housing_rows)[kind]
    answer = httpx.post(
        f"{open_server.url}/invocations", content=body, headers={"Content-Type": content_type}
    )
    assert answer.status_code == 200, answer.text[:600]
    expected = list(housing_model.predict(housing_rows))
    assert answer.json()["predictions"] == pytest.approx(expected, rel=1e-9)


def test_mlflows_scoring_server_client_finds_the_server(open_server: Served) -> None:
    """MLflow's own client for `mlflow models serve` waits on /ping and reads /version, with no token."""
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    client = ScoringServerClient("127.0.0.1", open_server.port)
    client.wait_server_ready(timeout=10)
    assert client.get_version()


def test_mlflows_scoring_server_client_scores_a_frame_with_missing_values(
    open_server: Served, housing_rows: pd.DataFrame, housing_model: Any
) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    client = ScoringServerClient("127.0.0.1", open_server.port)
    predictions = client.invoke(housing_rows).get_predictions(predictions_format="ndarray")
    assert list(predictions) == pytest.approx(list(housing_model.predict(housing_rows)), rel=1e-9)


# --- schemathesis over /openapi.json ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def schemathesis_cases() -> int:
    """Generated cases over all operations: SHIPYARD_SCHEMATHESIS_EXAMPLES, 200 by default (a nightly run
    sets >= 1000). Module-scoped, so it is read before the per-test fixture clears SHIPYARD_* variables."""
    return max(int(os.environ.get("SHIPYARD_SCHEMATHESIS_EXAMPLES", "200")), 1)


def test_schemathesis_finds_no_server_error_on_any_route(
    secured: Served, store: Store, schemathesis_cases: int
) -> None:
    """Schema-valid and schema-violating requests, generated from the service's own OpenAPI document, to
    every operation with a valid admin token: none may be answered 5xx (but the batch queue's documented
    503, as no Redis runs here), and every documented answer must match its documented schema."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    auth = bearer(store, "predict", "admin")  # every route, admin and batch ones too
    schema = schemathesis.openapi.from_url(f"{secured.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    # an operation without parameters or body has one possible request: the budget goes to the others
    varied = [op for op in operations if op.body or any(True for _ in op.iter_parameters())]
    per_operation = -(-schemathesis_cases // len(varied))
    sent: dict[str, int] = {}
    statuses: dict[str, set[int]] = {}
    failures: list[str] = []

    def fuzz(operation: Any, session: requests.Session) -> None:
        # random model names only meet the 404: most cases name a served model (and version), so the
        # generated bodies reach the parsers and the models
        in_path = {p.name for p in operation.iter_parameters() if p.location == "path"}
        served = [
            {k: v for k, v in {"name": model, "version": "1"}.items() if k in in_path}
            for model in ("iris", "housing")
        ]
        strategies = [
            operation.as_strategy(mode, path_parameters=fixed or None)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for fixed in ([{}, *served] if in_path else [{}])
        ]
        strategy = st.one_of(strategies)

        @settings(
            max_examples=per_operation if operation in varied else 1,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            response = case.call(base_url=secured.url, session=session, headers=dict(auth), timeout=15)
            sent[operation.label] = sent.get(operation.label, 0) + 1
            statuses.setdefault(operation.label, set()).add(response.status_code)
            checks = [not_a_server_error, response_schema_conformance]
            if response.status_code == 503 and "batch queue is unavailable" in response.text:
                checks = [response_schema_conformance]  # no Redis here: the documented 503 is right
            try:
                case.validate_response(response, checks=checks)
            except Exception as exc:  # collect every operation's failure, then report them together
                failures.append(f"{operation.label}: {str(exc)[:800]}\n{case.as_curl_command()[:600]}")
                raise

        with contextlib.suppress(Exception):  # the failure is in `failures`; go on to the next operation
            run()

    with requests.Session() as session:
        for operation in operations:
            fuzz(operation, session)
    assert not failures, "\n\n".join(failures)
    assert sum(sent.values()) >= schemathesis_cases, sent
