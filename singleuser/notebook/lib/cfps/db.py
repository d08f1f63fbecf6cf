"""sql()：在 CFPS 数据库上运行一条 SQL 查询，得到一个 pandas DataFrame。

连接信息来自环境变量 CFPS_DATASET_URL（JupyterHub 为每个用户的服务器设置好，见 portal/config/dataset.py）：
- mysql://用户:密码@主机:端口/库名 —— MariaDB/MySQL 上的只读账号（驱动：PyMySQL）
- sqlite:////绝对路径/cfps_sample.sqlite3?mode=ro —— 内置的合成样本数据，以只读方式打开
"""

from __future__ import annotations

import functools
import os
import sqlite3
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pandas as pd
import sqlalchemy as sa

# MariaDB/MySQL error codes that mean "this account may not do that".
PERMISSION_CODES = {1044, 1045, 1142, 1143, 1227, 1370}


class SQLError(Exception):
    """数据库报告的错误，附上中文说明；原始错误在 .orig 中。"""

    def __init__(self, message: str, orig: BaseException | None = None):
        super().__init__(message)
        self.orig = orig


def dataset_url() -> str:
    url = os.environ.get("CFPS_DATASET_URL", "")
    if not url:
        raise SQLError(
            "没有设置环境变量 CFPS_DATASET_URL，不知道该连接哪个数据库：请从 JupyterHub 打开 JupyterLab，或联系管理员。"
        )
    return url


def engine() -> sa.engine.Engine:
    """当前数据集的 SQLAlchemy 引擎（按连接地址缓存）。"""
    return _engine_for(dataset_url())


@functools.lru_cache(maxsize=4)
def _engine_for(url: str) -> sa.engine.Engine:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path?mode=ro: three slashes, then the absolute path (SQLAlchemy's convention).
        path = unquote(url.split("://", 1)[1].split("?", 1)[0])[1:]
        mode = parse_qs(parts.query).get("mode", ["ro"])[-1]

        def connect():
            return sqlite3.connect(f"file:{quote(path)}?mode={mode}", uri=True, check_same_thread=False)

        # No pool: every query opens the file anew, so a re-loaded sample is seen at once.
        return sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)
    if parts.scheme in {"mysql", "mariadb"}:
        target = sa.engine.make_url(url).set(drivername="mysql+pymysql")
        target = target.update_query_dict({"charset": "utf8mb4"})
        # Kernels sit idle for hours; pre-ping and recycle replace connections the server has dropped.
        return sa.create_engine(target, pool_pre_ping=True, pool_recycle=1800, pool_size=2, max_overflow=3)
    raise SQLError(f"CFPS_DATASET_URL 的格式不认识（{parts.scheme}://）：应为 mysql:// 或 sqlite:///")


def sql(query: str, params: dict | None = None) -> pd.DataFrame:
    """运行一条 SQL 查询，返回 pandas DataFrame。

    参数用 :名字 占位，再用字典传值，例如
        sql("SELECT pid, age FROM adult_2018 WHERE age >= :a AND provcd = :p", {"a": 60, "p": 44})
    账号是只读的：UPDATE、DELETE、DROP 等会被数据库拒绝。
    """
    __tracebackhide__ = True  # IPython shows the student's cell and the error, not this module's insides
    try:
        with engine().connect() as conn:
            return pd.read_sql_query(sa.text(query), conn, params=params)
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        # pandas wraps the driver's error in its own DatabaseError; show the database's message, not the chain.
        cause = exc
        while cause is not None and not isinstance(cause, sa.exc.SQLAlchemyError):
            cause = cause.__cause__
        if isinstance(cause, sa.exc.DBAPIError):
            raise SQLError(explain(cause.orig), cause.orig) from None
        if isinstance(cause, sa.exc.ResourceClosedError):
            raise SQLError("这条语句没有返回表格：sql() 只用于查询（SELECT）。") from None
        raise SQLError(f"SQL 语句有问题：{cause or exc}", cause or exc) from None


def explain(orig: BaseException) -> str:
    """One line in Chinese, then the database's own message unchanged."""
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    message = str(args[1]) if code is not None and len(args) > 1 else str(orig)
    if "unable to open database file" in message:
        return f"打不开样本数据文件（还没有生成？请管理员运行 python manage.py load_sample_data）：{message}"
    if code in PERMISSION_CODES or "readonly" in message or "read-only" in message:
        return f"数据库拒绝了这条语句（只读账号：只能用 SELECT 查询，不能修改、删除或新建）：{message}"
    return f"SQL 出错：{message}"


def tables() -> list[str]:
    """数据库里所有表的名字。"""
    try:
        return sorted(sa.inspect(engine()).get_table_names())
    except sa.exc.DBAPIError as exc:
        raise SQLError(explain(exc.orig), exc.orig) from None
