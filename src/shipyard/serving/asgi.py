"""The ASGI entry point for uvicorn: ``uvicorn shipyard.serving.asgi:app``."""

from shipyard.serving.app import create_app

app = create_app()
