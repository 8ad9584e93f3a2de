"""A second anchor for bench_train.py: the same model tracked and registered with plain MLflow calls.

What a careful user would write without Shipyard: fit (as bare_train_iris.py), then one MLflow run in an
SQLite store with params, test metrics, the model with signature and input example, and a registered
version with an alias. The gap between this and ``shipyard train`` is what Shipyard itself adds
(validation, reference profile, plots, dataset input, lineage, the gate); the gap between this and the
bare script is MLflow's own cost.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).parent))
from bare_train_iris import build_model


def main(home: Path) -> None:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name("iris-mlflow") is None:
        mlflow.create_experiment("iris-mlflow", artifact_location=(home / "mlartifacts").as_uri())
    mlflow.set_experiment("iris-mlflow")
    bunch = load_iris(as_frame=True)
    x, y = bunch.data, bunch.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
    with mlflow.start_run():
        model = build_model(list(x.columns)).fit(x_train, y_train)
        predictions = model.predict(x_test)
        mlflow.log_params({"n_estimators": 100, "max_depth": 5, "random_state": 42})
        mlflow.log_metrics(
            {
                "accuracy": accuracy_score(y_test, predictions),
                "f1_macro": f1_score(y_test, predictions, average="macro"),
            }
        )
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x_train, model.predict(x_train)),
            input_example=x_train.head(5),
            serialization_format="cloudpickle",
            registered_model_name="iris-mlflow",
        )
    MlflowClient().set_registered_model_alias("iris-mlflow", "champion", str(info.registered_model_version))
    print(f"accuracy={accuracy_score(y_test, predictions):.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
