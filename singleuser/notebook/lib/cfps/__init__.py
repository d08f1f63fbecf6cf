"""CFPS 课程的笔记本工具（每个内核启动时已自动导入，见 ~/data/startup/00-cfps.py）。

    sql("SELECT gender, COUNT(*) AS n FROM adult_2018 GROUP BY gender")   # 查询 → pandas.DataFrame
    sql("SELECT * FROM adult_2018 WHERE provcd = :p", {"p": 44})          # 带参数的查询（:名字）
    tables()                      # 有哪些表
    variables("adult_2018")       # 表里每个变量的中文标签
    value_labels("adult_2018", "edu")   # 某个变量每个取值的含义
    labelled(df, "adult_2018")    # 把代码换成中文标签（新表，原表不变）
    special_to_nan(df)            # 把负数特殊代码（-8 不适用、-1 不知道 ……）换成缺失值 NaN

数据库账号是只读的：只能 SELECT，不能修改或删除数据。连接信息来自环境变量 CFPS_DATASET_URL。
"""

from cfps.db import SQLError, dataset_url, engine, sql, tables
from cfps.labels import (
    PROVINCES,
    SPECIAL_CODES,
    labelled,
    map_name,
    sample_info,
    special_to_nan,
    value_labels,
    variable_label,
    variables,
)

__all__ = [
    "PROVINCES",
    "SPECIAL_CODES",
    "SQLError",
    "dataset_url",
    "engine",
    "labelled",
    "map_name",
    "sample_info",
    "special_to_nan",
    "sql",
    "tables",
    "value_labels",
    "variable_label",
    "variables",
]
