"""`migrations.HEAD`, which lets `Store.migrate` skip Alembic on an up-to-date database, is
Alembic's own head, and a database at an older revision is still upgraded."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from medreq.storage import Store
from medreq.storage.migrations import HEAD
from medreq.storage.store import MIGRATIONS


def test_head_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


async def test_an_older_database_is_upgraded_and_a_current_one_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = Store(url, background_checkpoints=False)
    try:
        await store.migrate()
        engine = create_engine(url)
        with engine.begin() as conn:  # back to 0002, as a database made before 0003 is
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
            assert not engine.dialect.has_table(conn, "push_subscriptions")
        await store.migrate()  # up again: 0003 ran
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD
            assert engine.dialect.has_table(conn, "push_subscriptions")
        engine.dispose()
        await store.migrate()  # at head: nothing to do
    finally:
        await store.close()
