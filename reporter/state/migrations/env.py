"""Alembic's environment: always on the connection `reporter.state.migrate` hands over (inside its
schema lock), never on a URL of its own."""

from __future__ import annotations

from alembic import context

from reporter.state.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot alter most of a table in place: Alembic's batch mode copies it instead.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
