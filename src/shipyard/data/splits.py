"""Deterministic train/test split of a validated frame."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from shipyard.config.pipeline import SplitConfig, Task
from shipyard.errors import DataError


@dataclass(frozen=True)
class Split:
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def split_frame(
    frame: pd.DataFrame, features: list[str], target: str, config: SplitConfig, task: Task
) -> Split:
    """Split into features and target, train and test; stratified for classification when asked."""
    X = frame[features]
    y = frame[target]
    stratify = y if (task == "classification" and config.stratify) else None
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=config.test_size, random_state=config.random_state, stratify=stratify
        )
    except ValueError as exc:
        raise DataError(f"cannot split {len(frame)} rows (test_size={config.test_size}): {exc}") from None
    return Split(X_train, X_test, y_train, y_test)
