"""The lakehouse jobs: orchestrator, executor, ingestor and their helpers."""
