"""Batch scoring: files in chunks through the service's inference path, jobs through a queue, Spark."""
