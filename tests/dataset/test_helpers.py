"""The `cfps` package students use (singleuser/notebook/lib/cfps), in this process, on both backends."""

from __future__ import annotations

import sys

import pytest

from portal.config import dataset


@pytest.fixture(params=["sqlite", "mariadb"])
def cfps(request, data_folder, monkeypatch):
    if request.param == "sqlite":
        url = f"sqlite:///{dataset.sample_path(data_folder)}?mode=ro"
    else:
        url = request.getfixturevalue("loaded").url()
    monkeypatch.setenv("CFPS_DATASET_URL", url)
    monkeypatch.syspath_prepend(str(data_folder / "lib"))
    import cfps

    assert cfps.__file__.startswith(str(data_folder))
    yield cfps
    for name in [m for m in sys.modules if m == "cfps" or m.startswith("cfps.")]:
        del sys.modules[name]


def test_sql_returns_a_dataframe_with_named_parameters(cfps):
    df = cfps.sql("SELECT pid, age FROM adult_2018 WHERE provcd = :p AND age >= :a", {"p": 44, "a": 60})
    assert len(df) > 10 and (df["age"] >= 60).all()


def test_percent_signs_and_like_work_through_the_driver(cfps):
    found = cfps.variables(search="收入")
    assert {"income", "fincome"} <= set(found["variable"])
    assert len(cfps.sql("SELECT variable FROM cfps_variables WHERE label LIKE '%健康%'")) >= 1


def test_labels_turn_codes_into_chinese(cfps):
    assert cfps.value_labels("adult_2018", "gender")[1] == "男"
    assert cfps.variable_label("adult_2018", "edu") == "最高学历"
    df = cfps.labelled(cfps.sql("SELECT gender, edu FROM adult_2018 WHERE edu > 0 LIMIT 50"), "adult_2018")
    assert set(df["gender"]) <= {"男", "女"}
    assert list(df["edu"].cat.categories[-2:]) == ["硕士", "博士"]  # ordered by code, not alphabetically


def test_special_codes_become_missing(cfps):
    income = cfps.sql("SELECT income FROM adult_2018")["income"]
    clean = cfps.special_to_nan(income)
    assert (income < 0).sum() == clean.isna().sum() > 0
    assert clean.mean() > income.mean()


def test_map_names_match_the_echarts_china_map(cfps):
    assert cfps.map_name(44) == "广东"
    assert cfps.map_name("广西壮族自治区") == "广西"
    assert cfps.map_name("黑龙江省") == "黑龙江"


def test_sample_info_says_synthetic(cfps):
    assert cfps.sample_info()["synthetic"] == "yes"


def test_writes_are_refused_with_a_chinese_hint_and_the_database_message(cfps):
    with pytest.raises(cfps.SQLError) as refused:
        cfps.sql("DELETE FROM adult_2018")
    assert "只读账号" in str(refused.value)
    assert "readonly" in str(refused.value) or "denied" in str(refused.value)


def test_without_a_dataset_url_the_error_says_what_to_do(cfps, monkeypatch):
    monkeypatch.delenv("CFPS_DATASET_URL")
    with pytest.raises(cfps.SQLError, match="CFPS_DATASET_URL"):
        cfps.sql("SELECT 1")
