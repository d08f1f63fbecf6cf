"""load_sample_data: the synthetic sample is deterministic, labelled SYNTHETIC, shaped like CFPS, identical
in SQLite and MariaDB, quick to load, and never overwrites tables it did not load itself."""

from __future__ import annotations

import re
import sqlite3
import time

from deploy import sample_data as sd
from tests.dataset.conftest import ADMIN_URL, manage

DATA_TABLES = {"adult_2010", "adult_2014", "adult_2018", "child_2018", "famecon_2018"}


def sqlite_checksum(path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") if n != sd.INFO_TABLE
        ]
        return sd.read_checksum(conn.cursor(), names, '"')
    finally:
        conn.close()


def mariadb_checksum(server, database) -> str:
    cursor = server.conn.cursor()
    cursor.execute(f"USE `{database}`")
    names = sorted(sd.existing_tables_mysql(cursor, database) - {sd.INFO_TABLE})
    return sd.read_checksum(cursor, names, "`")


def test_generator_is_deterministic():
    assert sd.build()[1] == sd.build()[1]
    assert sd.build(seed=1)[1] != sd.build()[1]


def test_loading_twice_into_sqlite_gives_the_same_file_contents(tmp_path):
    path = tmp_path / "sample.sqlite3"
    started = time.monotonic()
    first = manage("load_sample_data", "--sqlite", str(path), env={}, tmp=tmp_path)
    assert time.monotonic() - started < 15, "loading the sample should take seconds"
    once = sqlite_checksum(path)
    second = manage("load_sample_data", "--sqlite", str(path), env={}, tmp=tmp_path)
    assert sqlite_checksum(path) == once == sd.build()[1]
    printed = re.findall(r"checksum ([0-9a-f]{16})", first.stdout + second.stdout)
    assert printed == [once[:16]] * 2


def test_embedded_default_writes_the_sample_into_the_local_data_folder(tmp_path):
    result = manage("load_sample_data", env={}, tmp=tmp_path)
    path = tmp_path / "var" / "shared" / "data" / "sample" / "cfps_sample.sqlite3"
    assert str(path) in result.stdout
    assert sqlite_checksum(path) == sd.build()[1]


def test_mariadb_and_sqlite_hold_the_same_rows(loaded, data_folder, dataset_env, tmp_path):
    before = mariadb_checksum(loaded, loaded.database)
    manage("load_sample_data", env=dataset_env, tmp=tmp_path)  # a re-load replaces, with the same rows
    assert mariadb_checksum(loaded, loaded.database) == before == sd.build()[1]
    assert sqlite_checksum(data_folder / "sample" / "cfps_sample.sqlite3") == before


def test_sample_is_labelled_synthetic_everywhere(loaded, data_folder):
    conn = sqlite3.connect(data_folder / "sample" / "cfps_sample.sqlite3")
    info = dict(conn.execute(f"SELECT name, value FROM {sd.INFO_TABLE}"))
    conn.close()
    assert info["synthetic"] == "yes"
    assert "SYNTHETIC" in info["notice"] and "不是真实的 CFPS" in info["notice"]
    comments = dict(
        loaded.sql(
            "SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (loaded.database,),
        )
    )
    assert all(comments[name].startswith("SYNTHETIC") for name in DATA_TABLES), comments


def test_sample_has_the_cfps_shape():
    tables = {t.name: t for t in sd.build()[0]}
    assert DATA_TABLES | {sd.VARIABLES_TABLE, sd.VALUE_LABELS_TABLE, sd.INFO_TABLE} == set(tables)
    for name in DATA_TABLES:
        assert re.fullmatch(r"(adult|child|famecon)_(2010|2014|2018)", name)
        assert 1000 <= len(tables[name].rows) <= 10000, (name, len(tables[name].rows))
    adult = tables["adult_2018"]
    for column in ("pid", "fid", "provcd", "urban", "gender", "age", "marriage", "edu", "income"):
        assert column in adult.column_names
    # Every column has a Chinese label; every coded column has value labels, special codes included.
    labelled = {(t, v) for t, v, _, _ in tables[sd.VARIABLES_TABLE].rows}
    assert labelled == {(t.name, c) for t in tables.values() if t.name in DATA_TABLES for c in t.column_names}
    values = {(t, v, code): label for t, v, code, label in tables[sd.VALUE_LABELS_TABLE].rows}
    assert values[("adult_2018", "gender", 1)] == "男"
    assert values[("adult_2018", "income", -8)] == "不适用"
    assert values[("adult_2018", "provcd", 44)] == "广东省"
    # Negative special codes really occur, as in CFPS.
    income = [row[adult.column_names.index("income")] for row in adult.rows]
    assert {-8, -1, -2} <= set(income)
    # A panel: most adults of 2010 are interviewed again in 2018, with the same pid.
    first = {row[0] for row in tables["adult_2010"].rows}
    again = {row[0] for row in tables["adult_2018"].rows}
    assert len(first & again) > len(first) / 2


def test_refuses_to_replace_tables_it_did_not_load(server, tmp_path):
    database = server.new_name("db")
    server.sql(f"CREATE DATABASE `{database}`")
    server.sql(f"CREATE TABLE `{database}`.adult_2018 (pid INT)")
    env = {"DATASET_DATABASE_URL": server.url(database=database), "DATASET_ADMIN_URL": ADMIN_URL}
    refused = manage("load_sample_data", env=env, tmp=tmp_path, check=False)
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and f"database {database} already has tables adult_2018" in lines[0]
    assert "refusing to replace them" in lines[0]
    assert server.sql(f"SELECT COUNT(*) FROM `{database}`.adult_2018")[0][0] == 0
    manage("load_sample_data", "--force", env=env, tmp=tmp_path)
    assert server.sql(f"SELECT COUNT(*) FROM `{database}`.adult_2018")[0][0] > 1000
