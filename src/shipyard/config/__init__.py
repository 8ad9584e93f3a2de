"""Configuration: pipeline configs (one YAML per model) and runtime settings (environment, .env)."""

from shipyard.config.loading import load_config
from shipyard.config.pipeline import PipelineConfig
from shipyard.config.settings import Settings, get_settings

__all__ = ["PipelineConfig", "Settings", "get_settings", "load_config"]
