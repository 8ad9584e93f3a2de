"""Serving: the FastAPI service that answers predictions from the registry's champions."""

from shipyard.serving.app import create_app

__all__ = ["create_app"]
