"""Service tests run on the store fixtures of the store contract tests: SQLite and the
real Postgres (a private schema per test)."""

from store.conftest import postgres_schema_url, store_url

__all__ = ["postgres_schema_url", "store_url"]
