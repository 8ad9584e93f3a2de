"""Data: sources (bundled, CSV, Parquet), schema validation and train/test splits. Pure: reads only."""

from shipyard.data.sources import DataLoader, LoadedData
from shipyard.data.splits import Split, split_frame
from shipyard.data.validation import DataValidator, FailedCheck, ValidationReport

__all__ = [
    "DataLoader",
    "DataValidator",
    "FailedCheck",
    "LoadedData",
    "Split",
    "ValidationReport",
    "split_frame",
]
