"""Runners other than the plain CLI: DVC stages (through the CLI) and a ZenML pipeline. Each calls the
step functions of ``shipyard.pipeline.steps``; none re-implements a step."""
