"""Data contracts: the raw data shipped with the repo satisfies the contract its config declares.

These run on the real files, so a changed CSV, a config edit that no longer fits the data, or a
validator that stops catching bad rows shows up here before any training starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from shipyard.config.pipeline import PipelineConfig
from shipyard.data import DataLoader, DataValidator, LoadedData

from .conftest import HOUSING_CSV, HOUSING_SHA256, REPO_ROOT, load_shipped_config, load_shipped_data


@pytest.mark.parametrize("name", ["iris", "housing"])
def test_shipped_data_passes_its_config_contract(name: str) -> None:
    config = load_shipped_config(name)
    frame = load_shipped_data(config).frame

    valid, report = DataValidator(config.dataset).validate(frame)

    assert report.ok, f"{name}: {report.summary()}: {report.failures}"
    assert valid is not None
    assert len(valid) == len(frame)


def test_housing_has_2930_rows_and_82_columns(housing_data: LoadedData) -> None:
    assert housing_data.frame.shape == (2930, 82)


def test_housing_target_is_complete_and_positive(
    housing_data: LoadedData, housing_config: PipelineConfig
) -> None:
    target = housing_data.frame[housing_config.dataset.target]

    assert housing_config.dataset.target == "saleprice"
    assert pd.api.types.is_numeric_dtype(target)
    assert target.notna().all()
    assert (target > 0).all()


def test_housing_file_matches_the_recorded_provenance_hash() -> None:
    assert hashlib.sha256(HOUSING_CSV.read_bytes()).hexdigest() == HOUSING_SHA256


def test_loader_fingerprints_housing_with_the_file_hash(housing_data: LoadedData) -> None:
    """The digest the loader reports is what lineage records, so it must be the file's own SHA-256."""
    assert housing_data.digest == HOUSING_SHA256


def test_loading_and_validating_leave_the_raw_file_untouched(housing_config: PipelineConfig) -> None:
    before = HOUSING_CSV.stat()
    hash_before = hashlib.sha256(HOUSING_CSV.read_bytes()).hexdigest()

    loaded = DataLoader(housing_config.dataset.source, base_dir=REPO_ROOT).load()
    DataValidator(housing_config.dataset).validate(loaded.frame)

    after = HOUSING_CSV.stat()
    assert hashlib.sha256(HOUSING_CSV.read_bytes()).hexdigest() == hash_before
    assert after.st_mtime_ns == before.st_mtime_ns
    assert after.st_size == before.st_size


def test_validation_does_not_modify_the_loaded_frame(housing_config: PipelineConfig) -> None:
    """Validation coerces into a new frame; the raw frame callers hold (and hash) stays as read."""
    frame = load_shipped_data(housing_config).frame
    original = frame.copy(deep=True)

    DataValidator(housing_config.dataset).validate(frame)

    pd.testing.assert_frame_equal(frame, original)


def test_every_housing_column_is_declared(housing_data: LoadedData, housing_config: PipelineConfig) -> None:
    declared = set(housing_config.dataset.columns)
    present = set(housing_data.frame.columns)

    assert sorted(present - declared) == [], "columns in the data but not in the contract"
    assert sorted(declared - present) == [], "columns in the contract but not in the data"
    assert set(housing_config.feature_columns) <= present


def test_housing_identifiers_and_target_are_not_features(housing_config: PipelineConfig) -> None:
    features = set(housing_config.feature_columns)

    assert {"order", "pid", "saleprice"}.isdisjoint(features)
    assert len(features) == 79  # the 79 recorded house features the config's description promises


def test_housing_allowed_categories_cover_the_data(
    housing_data: LoadedData, housing_config: PipelineConfig
) -> None:
    frame = housing_data.frame
    with_allowed = {name: spec for name, spec in housing_config.dataset.columns.items() if spec.allowed}
    assert with_allowed, "the housing contract lists allowed values for some columns"

    outside = {
        name: sorted(set(frame[name].dropna()) - set(spec.allowed or []))
        for name, spec in with_allowed.items()
    }

    assert {name: values for name, values in outside.items() if values} == {}


def test_housing_nulls_appear_only_in_nullable_columns(
    housing_data: LoadedData, housing_config: PipelineConfig
) -> None:
    nulls = housing_data.frame.isna().sum()
    with_nulls = set(nulls[nulls > 0].index)
    nullable = {name for name, spec in housing_config.dataset.columns.items() if spec.nullable}

    assert with_nulls, "the Ames data has missing values (no alley, no garage): they must be read as nulls"
    assert sorted(with_nulls - nullable) == []


Corruption = Callable[[pd.DataFrame], pd.DataFrame]


def _set(column: str, value: object) -> Corruption:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[frame.index[3], column] = value
        return frame

    return corrupt


@pytest.mark.parametrize(
    ("corrupt", "column"),
    [
        (_set("saleprice", -5), "saleprice"),
        (_set("overall_qual", 11), "overall_qual"),
        (_set("street", "Dirt"), "street"),
        (_set("garage_finish", "Dirt"), "garage_finish"),
        (_set("neighborhood", np.nan), "neighborhood"),
        (_set("lot_frontage", np.inf), "lot_frontage"),
        (lambda f: f.drop(columns=["gr_liv_area"]), "gr_liv_area"),
        (lambda f: f.assign(listing_agent="someone"), "listing_agent"),
    ],
    ids=[
        "negative-price",
        "quality-out-of-range",
        "unknown-street",
        "unknown-garage-finish",
        "null-neighborhood",
        "infinite-frontage",
        "missing-column",
        "unexpected-column",
    ],
)
def test_housing_contract_rejects_a_broken_row(
    corrupt: Corruption, column: str, housing_data: LoadedData, housing_config: PipelineConfig
) -> None:
    """The contract has teeth: one bad value in the real data makes validation fail on that column."""
    valid, report = DataValidator(housing_config.dataset).validate(corrupt(housing_data.frame))

    assert valid is None
    assert not report.ok
    assert column in {failure.column for failure in report.failures}
