"""``python -m shipyard`` (and ``spark-submit .../shipyard/__main__.py ...``) run the CLI."""

from shipyard.cli.main import run

run()
