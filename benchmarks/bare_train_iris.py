"""The baseline for bench_train.py: configs/iris.yaml's model and split in plain scikit-learn, no tracking.

Same data (sklearn's bundled iris), same stratified 80/20 split (random_state=42), same preprocessing
(median impute + StandardScaler on the 4 numeric columns) and the same RandomForestClassifier, so the
only thing ``shipyard train -c configs/iris.yaml`` adds on top of this is validation, metrics, plots,
MLflow tracking and registration. Prints the test accuracy so the harness can check both agree.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build_model(numeric: list[str]) -> Pipeline:
    """The same estimator shipyard builds from configs/iris.yaml (features.scaler: standard)."""
    numeric_steps = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    preprocess = ColumnTransformer([("numeric", numeric_steps, numeric)], remainder="drop")
    forest = RandomForestClassifier(n_estimators=100, max_depth=5, random_state=42, n_jobs=1)
    return Pipeline([("features", preprocess), ("model", forest)])


def main() -> float:
    """Fit on the training split, score on the test split; returns the accuracy it prints."""
    bunch = load_iris(as_frame=True)
    x, y = bunch.data, bunch.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
    model = build_model(list(x.columns)).fit(x_train, y_train)
    accuracy = float(accuracy_score(y_test, model.predict(x_test)))
    print(f"accuracy={accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
