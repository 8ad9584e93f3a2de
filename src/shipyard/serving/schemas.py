"""The service's messages as pydantic models, for ``/openapi.json`` and ``/docs`` only.

The prediction routes read their bodies by hand (``parsing``: speed, and the precise 400/413/415/422 a
client gets), and no answer is re-validated on the way out: these models describe the wire, nothing
validates against them at run time (but ``BatchJobRequest``, which its route parses with
``parsing.parse_model``). ``request_body`` turns a model into a route's ``openapi_extra``;
``register_body_schemas`` moves the schemas it carries under ``components/schemas``, once, when the
document is built.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

COMPONENTS = "#/components/schemas/{model}"
_CARRIED = "x-shipyard-schemas"  # the operation-level key request_body fills and the document loses


class Message(BaseModel):
    """A documented message; the fields ``model_*`` of the protocols are not pydantic's namespace."""

    model_config = ConfigDict(protected_namespaces=())


# --- values ---------------------------------------------------------------------------------------------

FeatureValue = Annotated[
    str | int | float | bool | None,
    Field(description="A feature's value in its signature type; null (or absent) for a missing value."),
]
Label = Annotated[str | int | float | bool, Field(description="A class label, or a number (regressors).")]


class Record(RootModel[dict[str, FeatureValue]]):
    """One row: feature name -> value (the model's signature names the features and their types)."""


class ErrorItem(Message):
    loc: list[str | int] = Field(description="Where the problem is, from the top of the body.")
    msg: str
    type: str


class Problem(Message):
    """Every error but the V2 routes' (which answer ``{"error": ...}`` as that protocol says)."""

    detail: str | list[ErrorItem] = Field(description="What was wrong, or one item per bad field (422).")


_PROBLEMS: dict[int, str] = {
    400: "malformed body: empty, not JSON (or CSV), not UTF-8, or nested too deeply",
    401: "missing, expired or invalid bearer token",
    403: "the token lacks the route's scope",
    404: "not found, or the model is not served",
    409: "it exists and overwriting was not asked for",
    413: "too many rows or bytes",
    415: "a content type the route does not read",
    422: "fields the route or the model cannot take, each named",
    503: "a dependency is unavailable",
}


def problems(*statuses: int, said: dict[int, str] | None = None) -> dict[int | str, Any]:
    """FastAPI ``responses`` for these error statuses, each with the problem model; ``said`` replaces a
    status's standard description."""
    said = said or {}
    return {
        status: {"model": Problem, "description": said.get(status, _PROBLEMS[status])} for status in statuses
    }


def ok(model: type[BaseModel], description: str = "Successful Response") -> dict[int | str, Any]:
    """The 200 answer's documented model, without FastAPI validating or re-serialising the answer."""
    return {200: {"model": model, "description": description}}


def request_body(
    model: type[BaseModel],
    *,
    examples: dict[str, Any] | None = None,
    more_content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` documenting a body the route reads itself: the model's JSON schema, referenced
    as a component; ``more_content`` adds other media types (CSV, binary tensors)."""
    schema = model.model_json_schema(ref_template=COMPONENTS, mode="validation")
    carried = {**schema.pop("$defs", {}), model.__name__: schema}
    json_content: dict[str, Any] = {"schema": {"$ref": COMPONENTS.format(model=model.__name__)}}
    if examples:
        json_content["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": json_content, **(more_content or {})},
        },
        _CARRIED: carried,
    }


def register_body_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Move the schemas ``request_body`` carried on each operation under ``components/schemas``; a name
    already there must mean the same schema (two models of one name would make one refer to the other)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for name, schema in operation.pop(_CARRIED, {}).items():
                if schemas.setdefault(name, schema) != schema:
                    raise ValueError(f"two different schemas are named {name!r} in the OpenAPI document")
    return document


def install_openapi(app: FastAPI) -> None:
    """``app.openapi`` (``/openapi.json``, ``/docs``) with the request bodies' schemas registered as
    components; built once, on first ask, as FastAPI's own."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            app.openapi_schema = None  # a failure below leaves nothing half-done in the cache
            app.openapi_schema = register_body_schemas(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- Shipyard's own protocol: /predict, /models/{name}/predict --------------------------------------------

IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
IRIS_2 = {"sepal_length": 6.5, "sepal_width": 3.0, "petal_length": 5.5, "petal_width": 2.0}


class PredictRecords(Message):
    """Many rows; the A/B key field (when configured) may sit beside ``records``."""

    records: list[Record]


class PredictRequest(RootModel[PredictRecords | list[Record] | Record]):
    """One record (an object of feature -> value), ``{"records": [...]}``, or a list of records."""


class PredictResponse(Message):
    model: str = Field(description="The served model's registered name.")
    version: str = Field(description="The registered version that answered.")
    alias: str = Field(description="The alias that version is served for, e.g. champion.")
    variant: str = Field(description="champion, or challenger when an A/B test routed this request there.")
    request_id: str = Field(description="The X-Request-Id: send it back with the truth to POST /feedback.")
    predictions: list[Label] = Field(description="One per record, in order.")
    probabilities: list[dict[str, float]] | SkipJsonSchema[None] = Field(
        None, description="Classifiers only: class -> probability, one object per record."
    )


class FeatureAttribution(Message):
    feature: str
    attribution: float


class ExplainedRecord(Message):
    prediction: Label = Field(description="The answer, as POST /models/{name}/predict gives it.")
    explained: str = Field(
        description="What the attributions add up to: 'probability of class X' or 'predicted value'."
    )
    output: float = Field(description="That output: the predicted class's probability, or the value.")
    base_value: float = Field(description="The model's average output over its training data.")
    attributions: dict[str, float] = Field(description="Input feature -> its share of output - base_value.")
    top: list[FeatureAttribution] = Field(description="The top_k features by absolute attribution.")
    additivity_error: float = Field(description="|base_value + sum(attributions) - output|.")


class ExplainResponse(Message):
    model: str
    version: str
    variant: str
    request_id: str
    explanations: list[ExplainedRecord] = Field(description="One per record, in order.")


# --- MLflow's scoring protocol: /invocations -------------------------------------------------------------

Params = Annotated[
    dict[str, Any] | None,
    Field(description="MLflow inference params: the served models take none (only {} or null)."),
]
Columns = Annotated[dict[str, list[FeatureValue]], Field(description="Column name -> values, one per row.")]


class DataframeSplit(Message):
    """``pandas.DataFrame.to_dict(orient="split")``; ``index`` is read and ignored."""

    columns: list[str]
    data: list[list[FeatureValue]] = Field(description="Rows, each with one value per column.")
    index: list[Any] | SkipJsonSchema[None] = None


class DataframeSplitBody(Message):
    model_config = ConfigDict(extra="forbid")
    dataframe_split: DataframeSplit
    params: Params = None


class DataframeRecordsBody(Message):
    model_config = ConfigDict(extra="forbid")
    dataframe_records: list[Record]
    params: Params = None


class InstancesBody(Message):
    model_config = ConfigDict(extra="forbid")
    instances: list[Record] | Columns
    params: Params = None


class InputsBody(Message):
    model_config = ConfigDict(extra="forbid")
    inputs: list[Record] | Columns
    params: Params = None


class InvocationsRequest(RootModel[DataframeSplitBody | DataframeRecordsBody | InstancesBody | InputsBody]):
    """Exactly one of ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs`` (and optional
    ``params``), as ``mlflow models serve`` takes them; or a CSV body with a header row (text/csv)."""


class InvocationsResponse(Message):
    predictions: list[Label] = Field(description="One per row, as `mlflow models serve` answers.")


CSV_BODY = {
    "schema": {"type": "string", "description": "CSV with a header row of feature names, as MLflow takes it."}
}


# --- feedback --------------------------------------------------------------------------------------------

RequestId = Annotated[
    str, Field(min_length=1, max_length=128, description="The X-Request-Id a prediction answered.")
]
FeedbackLabel = Annotated[
    str | int | float | bool,
    Field(description="The truth: a class label (text at most 1,000 characters) or a finite number."),
]


class FeedbackItem(Message):
    """The truth for one prediction request: ``label`` for one row, or ``labels``, one per row."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["label"]}, {"required": ["labels"]}]}
    )

    request_id: RequestId
    label: FeedbackLabel | SkipJsonSchema[None] = None
    labels: Annotated[list[FeedbackLabel], Field(min_length=1)] | SkipJsonSchema[None] = None


class FeedbackBatch(Message):
    feedback: list[FeedbackItem] = Field(min_length=1)


class FeedbackRequest(RootModel[FeedbackBatch | FeedbackItem]):
    """One item, or ``{"feedback": [...]}``; every item is checked before any is recorded."""


class FeedbackResponse(Message):
    stored_rows: int = Field(description="Labels stored in the monitoring store (all of them).")
    matched_rows: int = Field(description="Labels for requests this replica answered (checked at once).")
    unmatched: list[str] = Field(
        description="Request ids this replica does not remember (at most 50): answered by another replica "
        "or before a restart. Their labels are stored too; the monitor joins them in the store."
    )
    live_quality: dict[str, dict[str, float]] = Field(
        description='"<model> v<version> (<variant>)" -> live metrics (accuracy, f1_macro or mae, rmse, n), '
        "recomputed from the store; empty when a separate `shipyard monitor` computes them."
    )


# --- batch jobs ------------------------------------------------------------------------------------------


class BatchJobRequest(BaseModel):
    """A file to score with a registered model."""

    model_config = ConfigDict(
        extra="forbid",
        protected_namespaces=(),
        json_schema_extra={
            "examples": [{"model": "iris", "input": "data/new_flowers.csv", "output": "scores/flowers.csv"}]
        },
    )

    model: str = Field(min_length=1, max_length=256, description="Registered model name, e.g. iris.")
    ref: str | None = Field(
        None, min_length=1, max_length=256, description="Alias or version (default: the champion)."
    )
    input: str = Field(
        min_length=1,
        max_length=4096,
        description="CSV or Parquet file (or a folder of them): a path under the batch root (absolute or "
        "relative to it) or a file:// URI.",
    )
    output: str = Field(
        min_length=1, max_length=4096, description="A .csv or .parquet file to write, under the batch root."
    )
    keep: list[str] = Field(
        default_factory=list, max_length=100, description="Input columns copied to the output, e.g. an id."
    )
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="Bad rows fail the job, or are skipped into <output>.rejects.csv."
    )
    chunk_rows: int | None = Field(
        None, ge=1, le=10_000_000, description="Rows per chunk (default: SHIPYARD_BATCH_CHUNK_ROWS)."
    )
    overwrite: bool = Field(False, description="Replace the output if it exists (else 409).")


class BatchJobAccepted(Message):
    job_id: str
    status: str
    status_url: str


class JobProgress(Message):
    rows_done: int
    rows_total: int | None
    fraction: float | None


class BatchJob(Message):
    """A batch job as ``GET /batch/jobs/{id}`` shows it; the counts are null until it has finished."""

    job_id: str
    status: Literal["queued", "running", "finished", "failed", "dead"]
    model: str
    ref: str | None
    version: str | None
    input: str
    output: str
    keep: list[str]
    on_error: Literal["fail", "skip"]
    progress: JobProgress
    rows_in: int | None
    rows_out: int | None
    rows_rejected: int | None
    rejects: str | None
    seconds: float | None
    rows_per_second: float | None
    attempts: int
    max_attempts: int
    error: str | None
    worker: str | None
    submitted_by: str
    submitted_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    history: list[dict[str, Any]] = Field(description="One entry per attempt.")


# --- operations ------------------------------------------------------------------------------------------


class Health(Message):
    status: Literal["ok"]


class Readiness(Message):
    ready: bool
    models: dict[str, bool] = Field(description="Model name -> loaded.")


class InputColumn(Message):
    name: str
    type: str = Field(description="The MLflow signature type: double, long, string, boolean, ...")
    required: bool
    allowed: list[str | int | float | bool] | SkipJsonSchema[None] = Field(
        None, description="The categories, for a categorical feature."
    )


class Engine(Message):
    name: str
    reason: str


class ServedModelInfo(Message):
    name: str
    version: str
    alias: str
    run_id: str | None
    task: Literal["classification", "regression"]
    classes: list[str] | None
    metrics: dict[str, float | None] = Field(description="Test-split metrics, from the training run.")
    inputs: list[InputColumn]
    lineage: dict[str, str]
    loaded_at: str
    engine: Engine


class NotLoaded(Message):
    name: str
    loaded: Literal[False]
    error: str


class ModelList(Message):
    models: list[ServedModelInfo | NotLoaded]


class AbKey(Message):
    header: str
    field: str | None


class AbTest(Message):
    mode: Literal["off", "split", "shadow"]
    split: float
    key: AbKey
    challenger: ServedModelInfo | None


class RegistryReach(Message):
    reachable: bool
    error: str | None


class RegistryState(RegistryReach):
    checked_at: str | None = Field(description="When the aliases were last checked.")


class ModelDetail(ServedModelInfo):
    ab_test: AbTest
    registry: RegistryState


class FeatureDriftResult(Message):
    name: str
    kind: str
    test: str
    test_title: str
    score: float | None = Field(description="The test's statistic: the raw p-value for p-value tests.")
    threshold: float
    drifted: bool = Field(description="The verdict, on the adjusted p-value when a correction is on.")
    p_adjusted: float | None = Field(
        None, description="The p-value adjusted for the number of features tested (p-value tests only)."
    )
    drifted_uncorrected: bool | None = Field(
        None, description="The verdict on the raw p-value (p-value tests, with a correction on)."
    )
    out_of_range: float | None = Field(
        None, description="Share of the current values outside the reference's range (numeric features)."
    )
    unseen_categories: float | None = Field(
        None, description="Share of the current values the reference never had (categorical features)."
    )
    type_violations: int = Field(0, description="Current values the model's input rules refuse.")
    type_violation_example: str | None = Field(None, description="The first refused value's reason.")
    reference_rows: int
    current_rows: int
    reference_missing: float | None
    current_missing: float | None
    edges: list[float] | None
    categories: list[str] | None
    reference_shares: list[float | None]
    current_shares: list[float | None]


class DomainClassifierBody(Message):
    auroc: float = Field(
        description="Cross-validated AUROC of a classifier telling current from reference rows."
    )
    threshold: float
    p_value: float = Field(description="One-sided Mann-Whitney p-value of the out-of-fold scores.")
    drifted: bool
    reference_rows: int
    current_rows: int
    seconds: float
    top_features: list[dict[str, float | str]] = Field(
        default_factory=list, description="When drifted: the features it used most (permutation importance)."
    )


class EstimatedPerformanceBody(Message):
    method: str = Field(description="cbpe (classifiers: calibrated confidence) or dle (regressors).")
    metric: str = Field(description="The watched metric a drop is judged on.")
    estimated: dict[str, float] = Field(description="Metrics estimated on the window, without labels.")
    reference: dict[str, float] = Field(description="The same metrics realised on the held-out split.")
    reference_estimate: dict[str, float] = Field(description="As estimated on the held-out split.")
    errors: dict[str, float] = Field(description="Standard error of each estimate over the window's rows.")
    drop: float = Field(description="How much worse the watched estimate is (a share; <= 0: not worse).")
    z: float = Field(description="The drop in standard errors.")
    max_drop: float
    rows: int
    degraded: bool = Field(description="drop > max_drop and z >= 3.")


class DriftReportBody(Message):
    model: str
    version: str | None
    reference_rows: int
    current_rows: int
    drift_share: float
    features: list[FeatureDriftResult]
    prediction: FeatureDriftResult | None
    correction: str = Field(
        "none", description="How p-values were corrected for the number of features: bh, bonferroni, none."
    )
    created_at: str
    report_id: str
    drifted_features: list[str]
    drifted_share: float
    dataset_drift: bool
    rows_not_scored: int = Field(0, description="Current rows with a refused value (no prediction).")
    attributions: dict[str, Any] | None = Field(
        None, description="Mean |attribution| per feature on a sample of each side (drift --explain-rows)."
    )
    multivariate: DomainClassifierBody | None = Field(
        None, description="The domain classifier (one multivariate score); part of dataset_drift."
    )
    performance: EstimatedPerformanceBody | None = Field(
        None, description="The model's quality estimated without labels (CBPE / DLE), when it keeps one."
    )
    quality_issues: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="feature -> its data-quality findings (missing share above the reference's, "
        "out_of_range, unseen_categories, type_violations), for the features that have any.",
    )


class ReloadOutcome(Message):
    models: dict[str, str] = Field(description="Model name -> what happened (unchanged, loaded v2, ...).")
    registry: RegistryReach


TEXT = {"schema": {"type": "string"}}


class QualityHistoryRow(Message):
    stored_at: float = Field(description="When the monitor stored the window's report (epoch seconds).")
    version: str | None
    report_id: str | None
    window_rows: int = Field(description="Rows in the window.")
    feature: str
    missing: float = Field(description="Share of the window's values that are missing.")
    out_of_range: float | None = Field(description="Share outside the training range (numeric features).")
    unseen_categories: float | None = Field(description="Share of categories training never saw.")
    type_violations: int = Field(description="Values the model's input rules refused.")


class QualityHistoryWindow(Message):
    stored_at: float
    version: str | None
    report_id: str | None
    rows: int
    rows_not_scored: int
    findings: dict[str, dict[str, float]] = Field(
        description="feature -> its data-quality findings in the window (as a drift report's quality_issues)."
    )


class QualityHistoryBody(Message):
    model: str
    windows: list[QualityHistoryWindow] = Field(description="The stored windows, newest first.")
    rows: list[QualityHistoryRow] = Field(description="One per window and feature, after the filters.")
    features: list[str]
    feature: str | None
    check: str | None
    filters: dict[str, Any]
