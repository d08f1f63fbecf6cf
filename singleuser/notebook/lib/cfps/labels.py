"""变量标签和取值标签：一个变量是什么意思，它的每个代码代表什么。

标签存放在数据库的两张表里：cfps_variables（table_name, variable, label）和
cfps_value_labels（table_name, variable, value, label）。负数是 CFPS 的特殊代码，见 SPECIAL_CODES。
"""

from __future__ import annotations

import functools

import pandas as pd

from cfps.db import dataset_url, sql, tables

SPECIAL_CODES = {-1: "不知道", -2: "拒绝回答", -8: "不适用", -9: "缺失", -10: "无法判断"}

# Province codes (GB/T 2260, public) and the short names the ECharts China map uses.
PROVINCES = {
    11: "北京", 12: "天津", 13: "河北", 14: "山西", 15: "内蒙古", 21: "辽宁", 22: "吉林", 23: "黑龙江",
    31: "上海", 32: "江苏", 33: "浙江", 34: "安徽", 35: "福建", 36: "江西", 37: "山东", 41: "河南",
    42: "湖北", 43: "湖南", 44: "广东", 45: "广西", 46: "海南", 50: "重庆", 51: "四川", 52: "贵州",
    53: "云南", 54: "西藏", 61: "陕西", 62: "甘肃", 63: "青海", 64: "宁夏", 65: "新疆",
    71: "台湾", 81: "香港", 82: "澳门",
}  # fmt: skip


@functools.lru_cache(maxsize=4)
def _all_value_labels(url: str) -> dict[tuple[str, str], dict[int, str]]:
    found: dict[tuple[str, str], dict[int, str]] = {}
    for row in sql("SELECT table_name, variable, value, label FROM cfps_value_labels").itertuples(index=False):
        found.setdefault((row.table_name, row.variable), {})[int(row.value)] = row.label
    return found


def variables(table: str | None = None, search: str | None = None) -> pd.DataFrame:
    """变量和它们的中文标签。table：只看一张表；search：变量名或标签里包含这几个字。"""
    query = "SELECT table_name, variable, label FROM cfps_variables WHERE 1 = 1"
    params = {}
    if table:
        query += " AND table_name = :table"
        params["table"] = table
    if search:
        query += " AND (variable LIKE :s OR label LIKE :s)"
        params["s"] = f"%{search}%"
    return sql(query + " ORDER BY table_name, position", params)


def variable_label(table: str, variable: str) -> str:
    """一个变量的中文标签，例如 variable_label("adult_2018", "edu") → "最高学历"。"""
    found = sql("SELECT label FROM cfps_variables WHERE table_name = :t AND variable = :v", {"t": table, "v": variable})
    return found["label"].iloc[0] if len(found) else variable


def value_labels(table: str, variable: str) -> dict[int, str]:
    """一个变量每个取值的含义，例如 {1: "男", 0: "女", -8: "不适用", ...}；没有标签时为空字典。"""
    return dict(_all_value_labels(dataset_url()).get((table, variable), {}))


def labelled(df: pd.DataFrame, table: str, columns: list[str] | None = None) -> pd.DataFrame:
    """返回一份新表：有取值标签的列，代码换成中文标签（按代码顺序排列的分类变量）。原表不变。"""
    out = df.copy()
    for column in columns or list(df.columns):
        labels = value_labels(table, column)
        if not labels or column not in out:
            continue
        codes = out[column]
        order = [labels[code] for code in sorted(labels)]
        if codes.dropna().isin(list(labels)).all():
            out[column] = pd.Categorical(codes.map(labels), categories=order, ordered=True)
        else:  # a code without a label stays as it is
            out[column] = codes.map(lambda v, labels=labels: labels.get(v, v))
    return out


def special_to_nan(obj, codes=None):
    """把负数特殊代码（默认 SPECIAL_CODES：-1 不知道、-2 拒绝回答、-8 不适用 ……）换成 NaN，便于计算平均数等。
    可用于 DataFrame（只处理数值列）或 Series；返回新对象。"""
    codes = list(SPECIAL_CODES if codes is None else codes)
    if isinstance(obj, pd.DataFrame):
        out = obj.copy()
        for column in out.select_dtypes("number").columns:
            out[column] = out[column].where(~out[column].isin(codes))
        return out
    return obj.where(~obj.isin(codes))


def map_name(province) -> str:
    """省份在 ECharts 中国地图上的名字（简称）。参数可以是省国标码或全名：44 → "广东"，"广西壮族自治区" → "广西"。"""
    if not isinstance(province, str):
        return PROVINCES.get(int(province), str(province))
    for short in PROVINCES.values():
        if province.startswith(short):
            return short
    return province


def sample_info() -> dict[str, str]:
    """关于样本数据的说明（合成数据会写明 synthetic = yes）；真实数据库里没有这张表时为空字典。"""
    if "cfps_sample_info" not in tables():
        return {}
    return dict(sql("SELECT name, value FROM cfps_sample_info").itertuples(index=False))
