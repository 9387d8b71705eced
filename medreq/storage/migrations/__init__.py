"""Alembic migrations (one file per revision in `versions/`)."""

#: The newest revision. `Store.migrate` compares the database's `alembic_version` with it and
#: skips Alembic altogether when they match: importing Alembic and reading the scripts was about
#: 120 ms of `medreq serve`'s start-up CPU (docs/benchmarks-history.md). Bump it with every new revision;
#: tests/test_migrations_head.py fails when it is not Alembic's own head.
HEAD = "0007"
