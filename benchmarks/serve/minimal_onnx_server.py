"""The floor for bench_serve.py: the least a FastAPI + ONNX Runtime server can do for ``/invocations``.

At start-up it loads the registered model with ``mlflow.sklearn.load_model`` and converts it with
skl2onnx exactly like ``shipyard.inference.engines`` does (one ``DoubleTensorType([None, 1])`` input per
feature, zipmap off for classifiers, ``target_opset={"": 17, "ai.onnx.ml": 3}``, an ONNX Runtime session
with one intra-op and one inter-op thread). ``POST /invocations`` takes a ``dataframe_split`` JSON body
and answers ``{"predictions": [...labels...]}``, parsed and written with orjson. No auth, no metrics,
no logging, no validation beyond what the lookup needs. One uvicorn worker, access log off.

    MLFLOW_TRACKING_URI=sqlite:///path/mlflow.db \\
        .venv/bin/python benchmarks/serve/minimal_onnx_server.py --port 8002
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response


def convert(model: Any) -> tuple[Any, list[str], list[str]]:
    """An ONNX Runtime session for the fitted Pipeline, its input names and its output names."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType

    features = [str(name) for name in model.feature_names_in_]
    classifier = hasattr(model, "predict_proba")
    types = [(name, DoubleTensorType([None, 1])) for name in features]
    options = {id(model.steps[-1][1]): {"zipmap": False}} if classifier else None
    onx = to_onnx(model, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = 1
    settings.inter_op_num_threads = 1
    session = ort.InferenceSession(onx.SerializeToString(), settings, providers=["CPUExecutionProvider"])
    return session, features, [session.get_outputs()[0].name]


def create_app(model_uri: str) -> FastAPI:
    """Load and convert the model now, then serve it on ``POST /invocations``."""
    import mlflow.sklearn

    session, features, outputs = convert(mlflow.sklearn.load_model(model_uri))
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        split = orjson.loads(await request.body())["dataframe_split"]
        data = np.asarray(split["data"], dtype=np.float64).reshape(-1, len(split["columns"]))
        index = {name: i for i, name in enumerate(split["columns"])}
        feed = {name: np.ascontiguousarray(data[:, index[name] : index[name] + 1]) for name in features}
        labels = session.run(outputs, feed)[0]
        return Response(orjson.dumps({"predictions": labels.tolist()}), media_type="application/json")

    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and run uvicorn with one worker, access log off, log level warning."""
    parser = argparse.ArgumentParser(
        description="Minimal FastAPI + ONNX Runtime server for POST /invocations (dataframe_split JSON); "
        "the floor that benchmarks/serve/bench_serve.py compares shipyard serve with. Reads the "
        "store from MLFLOW_TRACKING_URI.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model-uri", default="models:/iris@champion", help="MLflow model URI to load.")
    parser.add_argument("--host", default="127.0.0.1", help="Bind address.")
    parser.add_argument("--port", type=int, default=8002, help="Port.")
    args = parser.parse_args(argv)

    import uvicorn

    uvicorn.run(
        create_app(args.model_uri),
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
