"""CFPS 笔记本的启动文件：每个 Python 内核启动时自动运行（IPython 的 exec_files，见 ipython_kernel_config.py）。

已经为你准备好，不需要再 import：
    np   numpy              pd   pandas             plt  matplotlib.pyplot（已设置中文字体）
    pyecharts, opts         交互式图表（pyecharts.options 简写为 opts），离线可用
    sql()                   查询数据库，返回 DataFrame
    tables(), variables(), value_labels(), labelled(), special_to_nan()   查看表、变量和取值标签
    cfps                    以上函数所在的包
"""

import cfps
import cfps.charts
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyecharts
from cfps import labelled, special_to_nan, sql, tables, value_labels, variable_label, variables
from pyecharts import options as opts

cfps.charts.setup_matplotlib()
cfps.charts.setup_pyecharts()
pd.set_option("display.max_columns", 40)
pd.set_option("display.width", 160)

__all__ = [
    "cfps",
    "labelled",
    "np",
    "opts",
    "pd",
    "plt",
    "pyecharts",
    "special_to_nan",
    "sql",
    "tables",
    "value_labels",
    "variable_label",
    "variables",
]
