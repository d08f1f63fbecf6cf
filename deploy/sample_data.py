"""A deterministic, SYNTHETIC sample shaped like the CFPS survey: what notebooks, tests and a fresh install use,
since the real CFPS files are confidential.

Rules:
- Every value is made up by a seeded random generator (`random.Random(SEED)`): the same seed and Python give
  the same rows, byte for byte (`checksum`). Nothing here is, or is derived from, real CFPS data; each table's
  label, `cfps_sample_info` and the notebooks say so.
- The shape follows CFPS: one table per questionnaire and wave, `<questionnaire>_<year>` (adult_2010,
  adult_2014, adult_2018, child_2018, famecon_2018); person id `pid`, family id `fid`, province code `provcd`
  (GB/T 2260, the 25 CFPS provinces, five of them over-sampled as in CFPS); integer codes with value labels;
  negative special codes (-1 不知道, -2 拒绝回答, -8 不适用, -9 缺失). Adults are a panel: the same `pid`
  appears in later waves unless lost to attrition, and children who turn 16 join the adult table.
- `cfps_variables` (table_name, variable, label) and `cfps_value_labels` (table_name, variable, value, label)
  explain every column and code; `cfps_sample_info` says what this is, with the generator version and checksum.
- Only integers, short strings and dates: no floating point, so MariaDB and SQLite store identical values.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import random
from dataclasses import dataclass, field

SEED = 2010_2018
VERSION = "1"
NOTICE = "合成数据（SYNTHETIC）：由程序随机生成，仅供教学和测试，不是真实的 CFPS 调查数据，不能用于研究结论。"
INFO_TABLE = "cfps_sample_info"
VARIABLES_TABLE = "cfps_variables"
VALUE_LABELS_TABLE = "cfps_value_labels"

SPECIAL = {-1: "不知道", -2: "拒绝回答", -8: "不适用", -9: "缺失"}

# code: (name, sampling weight, income level, urban share). Liaoning, Shanghai, Henan, Gansu and Guangdong
# carry large weights, like CFPS's over-sampled provinces.
PROVINCES = {
    11: ("北京市", 2, 1.9, 0.86),
    12: ("天津市", 2, 1.5, 0.83),
    13: ("河北省", 5, 0.9, 0.56),
    14: ("山西省", 3, 0.85, 0.58),
    21: ("辽宁省", 8, 1.1, 0.68),
    22: ("吉林省", 2.5, 0.9, 0.57),
    23: ("黑龙江省", 3, 0.85, 0.6),
    31: ("上海市", 8, 2.0, 0.88),
    32: ("江苏省", 5, 1.4, 0.7),
    33: ("浙江省", 4, 1.5, 0.7),
    34: ("安徽省", 3.5, 0.9, 0.55),
    35: ("福建省", 2.5, 1.2, 0.66),
    36: ("江西省", 3, 0.85, 0.56),
    37: ("山东省", 5, 1.1, 0.61),
    41: ("河南省", 8, 0.8, 0.52),
    42: ("湖北省", 3.5, 1.0, 0.6),
    43: ("湖南省", 3.5, 0.9, 0.57),
    44: ("广东省", 8, 1.3, 0.71),
    45: ("广西壮族自治区", 3, 0.8, 0.5),
    50: ("重庆市", 2.5, 1.0, 0.65),
    51: ("四川省", 4.5, 0.85, 0.53),
    52: ("贵州省", 2.5, 0.7, 0.47),
    53: ("云南省", 3, 0.75, 0.47),
    61: ("陕西省", 3, 0.9, 0.58),
    62: ("甘肃省", 8, 0.7, 0.47),
}

GENDER = {1: "男", 0: "女"}
URBAN = {1: "城镇", 0: "乡村"}
YESNO = {1: "是", 0: "否"}
HUKOU = {1: "农业户口", 3: "非农业户口"}
MARRIAGE = {1: "未婚", 2: "在婚（有配偶）", 3: "同居", 4: "离婚", 5: "丧偶"}
EDU = {1: "文盲/半文盲", 2: "小学", 3: "初中", 4: "高中/中专/技校/职高", 5: "大专", 6: "大学本科", 7: "硕士", 8: "博士"}
EDU_YEARS = {1: 0, 2: 6, 3: 9, 4: 12, 5: 15, 6: 16, 7: 19, 8: 22}
EMPLOY = {1: "在业", 0: "失业", 3: "退出劳动力"}
HEALTH = {1: "非常健康", 2: "很健康", 3: "比较健康", 4: "一般", 5: "不健康"}
SATISFACTION = {1: "很不满意", 2: "不太满意", 3: "一般", 4: "比较满意", 5: "非常满意"}
SCHOOL = {0: "未上学", 1: "托儿所/幼儿园", 2: "小学", 3: "初中"}
HOUSE_OWN = {1: "完全自有", 2: "和单位共有产权", 3: "租住", 4: "政府免费提供", 5: "单位免费提供", 6: "亲戚朋友提供"}
# Occupation codes: label, typical education (1-8), income factor, rural weight, urban weight.
OCCUPATIONS = {
    1: ("农民", 2, 0.45, 60, 4),
    2: ("工厂工人", 3, 0.9, 10, 10),
    3: ("建筑工人", 3, 0.95, 8, 5),
    4: ("个体户", 3, 1.1, 6, 9),
    5: ("销售人员", 4, 1.0, 3, 9),
    6: ("司机", 3, 1.05, 3, 5),
    7: ("厨师", 3, 0.95, 1.5, 3),
    8: ("服务员", 3, 0.7, 1.5, 4),
    9: ("保安", 3, 0.75, 1, 3),
    10: ("保洁员", 2, 0.6, 1, 3),
    11: ("快递员", 4, 1.0, 0.5, 2.5),
    12: ("外卖骑手", 4, 1.0, 0.3, 2),
    13: ("理发师", 3, 0.85, 0.5, 1.5),
    14: ("教师", 6, 1.3, 1.5, 4),
    15: ("医生", 6, 1.6, 0.5, 2),
    16: ("护士", 5, 1.1, 0.5, 2),
    17: ("会计", 5, 1.2, 0.5, 2.5),
    18: ("公务员", 6, 1.4, 0.8, 3),
    19: ("工程师", 6, 1.7, 0.3, 3),
    20: ("程序员", 6, 2.1, 0.1, 2),
    21: ("企业管理人员", 6, 2.0, 0.4, 3),
    22: ("律师", 7, 2.3, 0.05, 0.6),
    23: ("科研人员", 7, 1.9, 0.05, 0.8),
    24: ("村干部", 4, 0.9, 1, 0.1),
}
DREAM_JOBS = {
    1: "医生",
    2: "教师",
    3: "科学家",
    4: "警察",
    5: "军人",
    6: "宇航员",
    7: "工程师",
    8: "画家",
    9: "歌手",
    10: "运动员",
    11: "程序员",
    12: "律师",
    13: "老板",
    14: "厨师",
    15: "设计师",
    16: "主播",
    17: "作家",
    18: "飞行员",
    19: "消防员",
    20: "演员",
}
DREAM_WEIGHTS = [16, 15, 9, 8, 6, 3, 5, 4, 4, 5, 4, 3, 5, 2, 3, 2, 2, 2, 2, 3]


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    sqltype: str = "INT"
    values: dict[int, str] | None = None  # value labels; the special codes are added to every coded column
    coded: bool = True  # False for identifiers and dates: no value labels at all


@dataclass
class Table:
    name: str
    label: str
    columns: list[Column]
    key: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _id(name: str, label: str) -> Column:
    return Column(name, label, coded=False)


def _common_person(year: int) -> list[Column]:
    return [
        _id("pid", "个人样本编码"),
        _id("fid", f"{year} 年家庭样本编码"),
        Column("provcd", "省国标码", values={code: p[0] for code, p in PROVINCES.items()}),
        _id("countyid", "区县顺序码"),
        Column("urban", "基于国家统计局资料的城乡分类", values=URBAN),
        Column("gender", "性别", values=GENDER),
        Column("birthy", "出生年"),
        Column("age", "年龄（周岁）"),
    ]


def _adult_columns(year: int) -> list[Column]:
    return [
        *_common_person(year),
        Column("hukou", "户口状况", values=HUKOU),
        Column("marriage", "当前婚姻状态", values=MARRIAGE),
        Column("edu", "最高学历", values=EDU),
        Column("eduy", "受教育年限（年）"),
        Column("party", "是否中共党员", values=YESNO),
        Column("employ", "就业状态", values=EMPLOY),
        Column("occupation", "主要工作的职业", values={k: v[0] for k, v in OCCUPATIONS.items()}),
        Column("income", "个人年收入（元）"),
        Column("workhours", "每周工作小时数"),
        Column("health", "自评健康", values=HEALTH),
        Column("satisfaction", "对自己生活的满意度", values=SATISFACTION),
        Column("happiness", "幸福感（0-10 分）"),
        Column("trust", "对陌生人的信任（0-10 分）"),
        Column("height", "身高（厘米）"),
        Column("weight", "体重（斤）"),
        Column("smoke", "过去一个月是否吸烟", values=YESNO),
        Column("drink", "过去一个月是否每周喝酒 3 次以上", values=YESNO),
        Column("internet", "是否上网", values=YESNO),
        Column("intdate", "访问日期", "DATE", coded=False),
    ]


def _child_columns() -> list[Column]:
    return [
        *_common_person(2018),
        Column("height", "身高（厘米）"),
        Column("weight", "体重（斤）"),
        Column("school", "当前就学阶段", values=SCHOOL),
        Column("hw_hours", "每周写作业小时数"),
        Column("screen_hours", "每天使用电子屏幕小时数"),
        Column("wordtest", "字词测试得分（0-34）"),
        Column("mathtest", "数学测试得分（0-24）"),
        Column("dream_job", "长大后最想从事的职业", values=DREAM_JOBS),
        Column("edu_expect", "家长期望孩子达到的学历", values=EDU),
        Column("intdate", "访问日期", "DATE", coded=False),
    ]


def _famecon_columns() -> list[Column]:
    return [
        _id("fid", "2018 年家庭样本编码"),
        Column("provcd", "省国标码", values={code: p[0] for code, p in PROVINCES.items()}),
        _id("countyid", "区县顺序码"),
        Column("urban", "基于国家统计局资料的城乡分类", values=URBAN),
        Column("familysize", "家庭人口数"),
        Column("fincome", "家庭纯收入（元）"),
        Column("fexp", "家庭总支出（元）"),
        Column("food", "食品支出（元）"),
        Column("dress", "衣着支出（元）"),
        Column("house", "居住支出（元）"),
        Column("daily", "家庭设备及日用品支出（元）"),
        Column("med", "医疗保健支出（元）"),
        Column("trco", "交通通讯支出（元）"),
        Column("eec", "文教娱乐支出（元）"),
        Column("other", "其他消费性支出（元）"),
        Column("house_own", "现住房产权", values=HOUSE_OWN),
        Column("house_value", "现住房市价（万元）"),
        Column("car", "是否有家用汽车", values=YESNO),
        Column("savings", "现金及存款总额（元）"),
        Column("debt", "是否有待偿贷款或借款", values=YESNO),
    ]


ADULT_NAMES = [c.name for c in _adult_columns(2018)]


# --- the generator ------------------------------------------------------------------------------------------
FIELDWORK = {  # first day, days, like CFPS's fieldwork seasons
    2010: (datetime.date(2010, 4, 1), 150),
    2014: (datetime.date(2014, 7, 1), 240),
    2018: (datetime.date(2018, 6, 1), 270),
}
WAVES = (2010, 2014, 2018)


def _clip(value: float, low: int, high: int) -> int:
    return int(min(max(round(value), low), high))


def _pick(rng: random.Random, options: dict[int, float]) -> int:
    return rng.choices(list(options), weights=list(options.values()))[0]


def _special(rng: random.Random, value: int, dont_know: float = 0.0, refused: float = 0.0) -> int:
    r = rng.random()
    if r < dont_know:
        return -1
    if r < dont_know + refused:
        return -2
    return value


class _Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.households = []
        self.people = []

    # --- who exists --------------------------------------------------------------------------------------
    def make_households(self, count: int) -> None:
        rng = self.rng
        codes = list(PROVINCES)
        weights = [PROVINCES[c][1] for c in codes]
        per_province = {}
        for _ in range(count):
            prov = rng.choices(codes, weights=weights)[0]
            per_province[prov] = per_province.get(prov, 0) + 1
            urban = 1 if rng.random() < PROVINCES[prov][3] else 0
            household = {
                "fid": prov * 10000 + per_province[prov],
                "provcd": prov,
                "countyid": rng.randint(1, 40),
                "urban": urban,
                "wealth": PROVINCES[prov][2] * (1.35 if urban else 0.8) * math.exp(rng.gauss(0, 0.35)),
                "alive2018": rng.random() < 0.9,
                "members": [],
            }
            self.households.append(household)
            for _ in range(_pick(rng, {1: 25, 2: 57, 3: 18})):
                self.add_person(household, rng.randint(1932, 1994))
            for _ in range(_pick(rng, {0: 70, 1: 30})):  # turn 16 between the waves and join the panel
                self.add_person(household, rng.randint(1995, 2002))
            for _ in range(_pick(rng, {0: 35, 1: 45, 2: 20})):
                self.add_person(household, rng.randint(2003, 2018))

    def add_person(self, household: dict, birthy: int) -> None:
        rng = self.rng
        gender = rng.randint(0, 1)
        number = len(household["members"]) + 1
        person = {
            "pid": household["fid"] * 1000 + 100 + number,
            "household": household,
            "gender": gender,
            "birthy": birthy,
            "hukou": 3 if household["urban"] and rng.random() < 0.6 else 1,
            "ability": rng.gauss(0, 1),
            "height_z": rng.gauss(0, 1),
            "bmi": rng.gauss(22.5, 3.0),
            "smoker": rng.random() < (0.55 if gender == 1 else 0.03),
            "drinker": rng.random() < (0.22 if gender == 1 else 0.02),
            "trust": rng.gauss(0, 1),
            "stays": [True, rng.random() < 0.86, rng.random() < 0.88],
            "married_by": birthy + _clip(rng.gauss(25, 3), 19, 40) if rng.random() < 0.93 else 9999,
            "widowed_at": _clip(rng.gauss(78, 9), 45, 110),
            "divorced": rng.random() < 0.04,
        }
        person["edu"] = self.education(person, household)
        household["members"].append(person)
        self.people.append(person)

    def education(self, person: dict, household: dict) -> int:
        cohort = (person["birthy"] - 1932) / 63  # 0 for the oldest, 1 for the youngest adults
        score = (
            1.2 + 3.2 * cohort + 0.7 * household["urban"] + 0.6 * person["ability"] + 0.4 * (household["wealth"] - 1)
        )
        score += self.rng.gauss(0, 0.8) - (0.4 if person["gender"] == 0 and cohort < 0.5 else 0)
        return _clip(score, 1, 8)

    # --- one adult in one wave ----------------------------------------------------------------------------
    def adult_row(self, person: dict, year: int, start: datetime.date, days: int) -> tuple:
        rng = self.rng
        household = person["household"]
        age = year - person["birthy"]
        edu = person["edu"] if age >= 24 else min(person["edu"], _clip(2 + (age - 12) / 3, 1, 8))
        if age < person["married_by"] - person["birthy"]:
            marriage = 3 if age > 22 and rng.random() < 0.03 else 1
        elif person["divorced"] and age > 35:
            marriage = 4
        elif age >= person["widowed_at"]:
            marriage = 5
        else:
            marriage = 2
        if age < 23 and edu >= 4 and rng.random() < 0.7:
            employ = 3  # still in school
        elif age >= 60:
            employ = 1 if rng.random() < (0.55 if not household["urban"] else 0.15) else 3
        else:
            employ = _pick(rng, {1: 85, 0: 4, 3: 11})
        occupation = income = workhours = -8
        if employ == 1:
            occupation = self.occupation(edu, household["urban"], age)
            factor = OCCUPATIONS[occupation][2]
            growth = {2010: 1.0, 2014: 1.45, 2018: 1.85}[year]
            level = 21000 * growth * factor * household["wealth"] ** 0.6 * (1 + 0.06 * (min(EDU_YEARS[edu], 19) - 9))
            level *= (0.82 if person["gender"] == 0 else 1.0) * math.exp(0.25 * person["ability"] + rng.gauss(0, 0.45))
            income = _special(rng, int(round(level, -2)), dont_know=0.03, refused=0.015)
            workhours = _special(rng, _clip(rng.gauss(47 if occupation != 1 else 38, 11), 4, 98), dont_know=0.02)
        health = _clip(1.9 + age / 28 + rng.gauss(0, 0.9), 1, 5)
        log_income = math.log(income) if income > 0 else math.log(8000)
        happy = 5.6 + 0.35 * (log_income - 10) - 0.4 * (health - 3) + (0.5 if marriage == 2 else 0) + rng.gauss(0, 1.7)
        happiness = _special(rng, _clip(happy + 0.05 * (year - 2010), 0, 10), dont_know=0.01, refused=0.005)
        satisfaction = _special(rng, _clip(2.9 + (happy - 6) / 2.2 + rng.gauss(0, 0.6), 1, 5), dont_know=0.01)
        trust = _special(rng, _clip(4.0 + 1.6 * person["trust"] + rng.gauss(0, 1), 0, 10), dont_know=0.02)
        height = _clip(
            (171 if person["gender"] else 159) + 6 * person["height_z"] + (1940 - person["birthy"]) / 25, 140, 200
        )
        weight = _clip(2 * (person["bmi"] + 0.04 * (age - 40)) * (height / 100) ** 2, 70, 260)
        logit = -1.0 + 0.9 * (year - 2010) / 4 + 0.45 * (edu - 3) + 0.8 * household["urban"] - 0.06 * (age - 40)
        internet = 1 if rng.random() < 1 / (1 + math.exp(-logit)) else 0
        row = {
            "pid": person["pid"],
            "fid": household["fid"],
            "provcd": household["provcd"],
            "countyid": household["countyid"],
            "urban": household["urban"],
            "gender": person["gender"],
            "birthy": person["birthy"],
            "age": age,
            "hukou": person["hukou"],
            "marriage": _special(rng, marriage, refused=0.005),
            "edu": edu,
            "eduy": EDU_YEARS[edu],
            "party": 1 if rng.random() < 0.02 + 0.03 * edu and age > 22 else 0,
            "employ": employ,
            "occupation": occupation,
            "income": income,
            "workhours": workhours,
            "health": health,
            "satisfaction": satisfaction,
            "happiness": happiness,
            "trust": trust,
            "height": _special(rng, height, dont_know=0.02),
            "weight": _special(rng, weight, dont_know=0.02),
            "smoke": 1 if person["smoker"] and rng.random() < 0.95 else 0,
            "drink": 1 if person["drinker"] and rng.random() < 0.9 else 0,
            "internet": internet,
            "intdate": self.interview_date(start, days),
        }
        return tuple(row[name] for name in ADULT_NAMES)

    def occupation(self, edu: int, urban: int, age: int) -> int:
        weights = {}
        for code, (_, typical, _, rural_w, urban_w) in OCCUPATIONS.items():
            base = urban_w if urban else rural_w
            if code in (11, 12) and age > 45:
                base *= 0.2
            weights[code] = base * math.exp(-0.8 * abs(edu - typical))
        return _pick(self.rng, weights)

    def interview_date(self, start: datetime.date, days: int) -> datetime.date:
        rng = self.rng
        while True:
            offset = int(days * rng.betavariate(1.6, 3.2))
            day = start + datetime.timedelta(days=offset)
            # Interviewers visit more at weekends, when people are at home.
            if day.weekday() >= 5 or rng.random() < 0.72:
                return day

    # --- children and families in 2018 ------------------------------------------------------------------
    def child_row(self, person: dict) -> tuple:
        rng = self.rng
        household = person["household"]
        age = 2018 - person["birthy"]
        boy = person["gender"] == 1
        growth = (
            50 + 24 * min(age, 2) + 6.3 * max(age - 2, 0)
            if age <= 12
            else 50 + 48 + 63 + (6 if boy else 4) * (age - 12)
        )
        height = _clip(growth + 4 * person["height_z"] + (2 if household["urban"] else 0), 45, 195)
        weight = _clip(2 * (15.5 + 0.3 * age + 1.6 * rng.gauss(0, 1)) * (height / 100) ** 2, 5, 200)
        school = 0 if age < 3 else 1 if age < 6 else 2 if age < 12 else 3
        capability = person["ability"] + 0.3 * household["urban"] + 0.2 * (household["wealth"] - 1)
        tested = age >= 10
        return (
            person["pid"],
            household["fid"],
            household["provcd"],
            household["countyid"],
            household["urban"],
            person["gender"],
            person["birthy"],
            age,
            height,
            weight,
            school,
            _clip(rng.gauss(3 + 1.3 * (age - 6), 3), 0, 40) if school >= 2 else -8,
            _clip(rng.gauss(1.2 + 0.2 * age - 0.3 * household["urban"], 1.0), 0, 10) if age >= 3 else -8,
            _special(rng, _clip(8 + 2.0 * (age - 9) + 3.5 * capability + rng.gauss(0, 3), 0, 34), dont_know=0.01)
            if tested
            else -8,
            _special(rng, _clip(5 + 1.5 * (age - 9) + 3.0 * capability + rng.gauss(0, 2.5), 0, 24), dont_know=0.01)
            if tested
            else -8,
            (_special(rng, rng.choices(list(DREAM_JOBS), weights=DREAM_WEIGHTS)[0], dont_know=0.08) if tested else -8),
            _special(
                rng,
                _clip(5.5 + 0.8 * household["urban"] + 0.4 * (household["wealth"] - 1) + rng.gauss(0, 1), 3, 8),
                dont_know=0.04,
            ),
            self.interview_date(*FIELDWORK[2018]),
        )

    def famecon_row(self, household: dict, members: int) -> tuple:
        rng = self.rng
        wealth = household["wealth"]
        fincome = int(round(58000 * wealth * (0.6 + 0.25 * members) * math.exp(rng.gauss(0, 0.5)), -2))
        shares = {
            "food": 0.33 - 0.04 * household["urban"],
            "dress": 0.06,
            "house": 0.13 + 0.05 * household["urban"],
            "daily": 0.07,
            "med": 0.10 + 0.02 * (1 - household["urban"]),
            "trco": 0.12,
            "eec": 0.11 + 0.02 * household["urban"],
            "other": 0.03,
        }
        total = fincome * (0.55 + 0.3 * rng.random()) + 9000
        parts = {k: int(round(total * s * math.exp(rng.gauss(0, 0.3)), -1)) for k, s in shares.items()}
        owns = _pick(rng, {1: 82 - 18 * household["urban"], 2: 3, 3: 6 + 16 * household["urban"], 4: 2, 5: 2, 6: 5})
        value = int(round(18 * wealth**1.6 * (2.0 if household["urban"] else 0.5) * math.exp(rng.gauss(0, 0.6))))
        return (
            household["fid"],
            household["provcd"],
            household["countyid"],
            household["urban"],
            members,
            _special(rng, fincome, dont_know=0.03, refused=0.01),
            sum(parts.values()),
            *parts.values(),
            owns,
            _special(rng, max(value, 1), dont_know=0.05) if owns in (1, 2) else -8,
            1 if rng.random() < min(0.1 + 0.25 * wealth, 0.85) else 0,
            _special(rng, int(round(fincome * 0.8 * math.exp(rng.gauss(0, 1.0)), -2)), dont_know=0.04, refused=0.06),
            1 if rng.random() < 0.28 else 0,
        )


def generate(seed: int = SEED) -> list[Table]:
    """Every sample table with its rows, the same for the same seed."""
    gen = _Generator(seed)
    gen.make_households(2300)
    tables = []
    for index, year in enumerate(WAVES):
        start, days = FIELDWORK[year]
        table = Table(f"adult_{year}", f"{year} 年成人问卷（合成数据）", _adult_columns(year), ("pid",))
        for person in gen.people:
            age = year - person["birthy"]
            present = all(person["stays"][: index + 1]) and (year != 2018 or person["household"]["alive2018"])
            if age >= 16 and present:
                table.rows.append(gen.adult_row(person, year, start, days))
        tables.append(table)
    child = Table("child_2018", "2018 年少儿问卷（合成数据）", _child_columns(), ("pid",))
    famecon = Table("famecon_2018", "2018 年家庭经济问卷（合成数据）", _famecon_columns(), ("fid",))
    for household in gen.households:
        if not household["alive2018"]:
            continue
        members = [p for p in household["members"] if all(p["stays"]) or 2018 - p["birthy"] < 16]
        for person in members:
            if 0 <= 2018 - person["birthy"] < 16:
                child.rows.append(gen.child_row(person))
        if members:
            famecon.rows.append(gen.famecon_row(household, len(members)))
    return [*tables, child, famecon]


# --- labels, metadata and the checksum -------------------------------------------------------------------
VARIABLES_COLUMNS = [
    Column("table_name", "表名", "VARCHAR(64)", coded=False),
    Column("variable", "变量名", "VARCHAR(64)", coded=False),
    Column("label", "变量标签", "VARCHAR(200)", coded=False),
    Column("position", "在表中的顺序", coded=False),
]
VALUE_LABELS_COLUMNS = [
    Column("table_name", "表名", "VARCHAR(64)", coded=False),
    Column("variable", "变量名", "VARCHAR(64)", coded=False),
    Column("value", "取值", coded=False),
    Column("label", "取值标签", "VARCHAR(100)", coded=False),
]
INFO_COLUMNS = [
    Column("name", "项目", "VARCHAR(64)", coded=False),
    Column("value", "内容", "VARCHAR(500)", coded=False),
]


def label_tables(tables: list[Table]) -> list[Table]:
    variables = Table(VARIABLES_TABLE, "变量标签（合成样本）", VARIABLES_COLUMNS, ("table_name", "variable"))
    values = Table(
        VALUE_LABELS_TABLE, "取值标签（合成样本）", VALUE_LABELS_COLUMNS, ("table_name", "variable", "value")
    )
    for table in tables:
        for position, column in enumerate(table.columns, 1):
            variables.rows.append((table.name, column.name, column.label, position))
            if column.coded:
                labels = {**(column.values or {}), **SPECIAL}
                values.rows.extend((table.name, column.name, v, labels[v]) for v in sorted(labels))
    return [variables, values]


def _canonical(value) -> str:
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


def checksum_rows(tables: list[tuple[str, list[str], list[tuple]]]) -> str:
    """sha256 over (table, columns, rows sorted by their canonical text): equal for equal content."""
    digest = hashlib.sha256()
    for name, columns, rows in sorted(tables):
        digest.update(f"{name}\t{','.join(columns)}\n".encode())
        for line in sorted("\t".join(_canonical(v) for v in row) for row in rows):
            digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def checksum(tables: list[Table]) -> str:
    return checksum_rows([(t.name, t.column_names, t.rows) for t in tables])


def info_table(tables: list[Table], digest: str, seed: int) -> Table:
    data = [t for t in tables if not t.name.startswith("cfps_")]
    info = Table(INFO_TABLE, "关于这份合成样本", INFO_COLUMNS, ("name",))
    info.rows = [
        ("synthetic", "yes"),
        ("notice", NOTICE),
        ("generator", f"deploy/sample_data.py version {VERSION}"),
        ("seed", str(seed)),
        ("checksum", digest),
        ("tables", ",".join(t.name for t in data)),
    ]
    return info


def build(seed: int = SEED) -> tuple[list[Table], str]:
    """All tables to load (data, labels, info) and the checksum of the data and label tables."""
    tables = generate(seed)
    tables += label_tables(tables)
    digest = checksum(tables)
    return [*tables, info_table(tables, digest, seed)], digest


# --- writing to SQLite and MariaDB ------------------------------------------------------------------------
def _sqlite_type(sqltype: str) -> str:
    return "TEXT" if sqltype.startswith("VARCHAR") or sqltype == "DATE" else "INTEGER"


def create_table_sql(table: Table, dialect: str) -> str:
    if dialect == "sqlite":
        cols = [f'"{c.name}" {_sqlite_type(c.sqltype)} NOT NULL' for c in table.columns]
        key = ", ".join(f'"{k}"' for k in table.key)
        return f'CREATE TABLE "{table.name}" ({", ".join(cols)}, PRIMARY KEY ({key}))'

    def comment(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"

    cols = [f"`{c.name}` {c.sqltype} NOT NULL COMMENT {comment(c.label)}" for c in table.columns]
    key = ", ".join(f"`{k}`" for k in table.key)
    return (
        f"CREATE TABLE `{table.name}` ({', '.join(cols)}, PRIMARY KEY ({key})) "
        f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT={comment('SYNTHETIC 合成数据：' + table.label)}"
    )


def insert_sql(table: Table, dialect: str) -> str:
    if dialect == "sqlite":
        names = ", ".join(f'"{c}"' for c in table.column_names)
        return f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in table.columns)})'
    names = ", ".join(f"`{c}`" for c in table.column_names)
    return f"INSERT INTO `{table.name}` ({names}) VALUES ({', '.join('%s' for _ in table.columns)})"


def write_sqlite(path, tables: list[Table]) -> None:
    """Write a fresh SQLite file next to `path`, then move it into place: a notebook that has the old file
    open keeps reading it, a new one sees the whole new file, never half of it."""
    import os
    import sqlite3
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.new")
    staging.unlink(missing_ok=True)
    conn = sqlite3.connect(staging)
    try:
        with conn:
            for table in tables:
                conn.execute(create_table_sql(table, "sqlite"))
                conn.executemany(insert_sql(table, "sqlite"), [tuple(map(_sqlite_value, r)) for r in table.rows])
        conn.execute("VACUUM")
    finally:
        conn.close()
    os.chmod(staging, 0o644)
    staging.replace(path)


def _sqlite_value(value):
    return value.isoformat() if isinstance(value, datetime.date) else value


def existing_tables_mysql(cursor, database: str) -> set[str]:
    cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
    return {row[0] for row in cursor.fetchall()}


def is_synthetic_mysql(cursor, database: str) -> bool:
    if INFO_TABLE not in existing_tables_mysql(cursor, database):
        return False
    cursor.execute(f"SELECT value FROM `{INFO_TABLE}` WHERE name = 'synthetic'")
    row = cursor.fetchone()
    return bool(row and row[0] == "yes")


def write_mysql(conn, tables: list[Table], batch: int = 1000) -> None:
    """Replace the sample tables in the connection's database (the info table goes last, so a load that
    stops half-way leaves no claim that the data is complete)."""
    cursor = conn.cursor()
    cursor.execute(f"DROP TABLE IF EXISTS `{INFO_TABLE}`")
    for table in tables:
        cursor.execute(f"DROP TABLE IF EXISTS `{table.name}`")
        cursor.execute(create_table_sql(table, "mysql"))
        sql = insert_sql(table, "mysql")
        for start in range(0, len(table.rows), batch):
            cursor.executemany(sql, table.rows[start : start + batch])
        conn.commit()


def read_checksum(cursor, table_names: list[str], quote: str) -> str:
    """The checksum of what a database holds now, computed like `checksum` from the rows read back."""
    found = []
    for name in table_names:
        cursor.execute(f"SELECT * FROM {quote}{name}{quote}")
        columns = [d[0] for d in cursor.description]
        found.append((name, columns, [tuple(r) for r in cursor.fetchall()]))
    return checksum_rows(found)
