"""Batch jobs over history and the registry: replay, the nightly retrain."""
