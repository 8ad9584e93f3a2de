"""Monitoring: drift against the training reference (one module per statistical test, plus a registry)."""
