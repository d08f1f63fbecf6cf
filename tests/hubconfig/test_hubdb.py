"""The hub's SQLite settings (hubconfig/hubdb.py), on a real SQLite file through SQLAlchemy as the hub uses it."""

from __future__ import annotations

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine

from hubconfig import hubdb


def test_the_hubs_sqlite_connections_use_wal_with_normal_sync(tmp_path):
    hubdb.use_wal()
    hubdb.use_wal()  # twice: still one listener
    assert event.contains(Engine, "connect", hubdb._on_connect)
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    engine.dispose()
