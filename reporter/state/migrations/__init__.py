"""Alembic migrations of the state database (`reporter.state.migrate` runs them)."""
