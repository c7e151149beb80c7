"""Buyer names as tender notices write them, each labelled with the CRM company it is (or None).

Used by the tender-import tests and by ``bench/tender_matching.py`` (precision and recall). The
CRM side holds the names as a CRM would (one legal form, ASCII); notices vary the legal form, use
full-width characters and abbreviations, and name buyers the CRM does not have, some of them close
to one it has (the precision side).
"""

from __future__ import annotations

CRM_COMPANIES: dict[str, str] = {
    "c1": "江苏亨通电力电缆有限公司",
    "c2": "ABB (China) Ltd.",
    "c3": "Siemens Energy GmbH",
    "c4": "国家电网江苏省电力有限公司",
    "c5": "Shanghai Electric Power Equipment Co., Ltd.",
    "c6": "宁德时代新能源科技股份有限公司",
    "c7": "Hitachi Energy Ltd",
    "c8": "China Railway Construction Engineering Group",
    "c9": "隆基绿能科技股份有限公司",
    "c10": "Schneider Electric International",
    "c11": "Mitsubishi Electric Corporation",
    "c12": "Tianjin Power Technology Co., Ltd.",
    "c13": "广东电网有限责任公司",
    "c14": "Jinko Solar Holding Co., Ltd.",
    "c15": "中国能源建设集团有限公司",
    "c16": "Zhejiang Chint Electrics Co., Ltd.",
    "c17": "Baosteel Metal Co., Ltd.",
    "c18": "Guangzhou Metro Group Co., Ltd.",
    "c19": "特变电工股份有限公司",
    "c20": "Wuhan Iron and Steel Company Limited",
}

# (name on the notice, the CRM company it is, or None when the CRM does not have the buyer)
NOTICE_BUYERS: tuple[tuple[str, str | None], ...] = (
    ("江苏亨通电力电缆股份有限公司", "c1"),
    ("江苏亨通电力电缆有限公司", "c1"),
    ("ＡＢＢ（中国）有限公司", "c2"),
    ("ABB (China) Limited", "c2"),
    ("SIEMENS ENERGY AG", "c3"),
    ("Siemens Energy GmbH.", "c3"),
    ("国家电网江苏省电力有限公司", "c4"),
    ("国网江苏省电力有限公司", "c4"),  # the grid's own short form
    ("Shanghai Elec. Power Equipment Co Ltd", "c5"),
    ("SHANGHAI ELECTRIC POWER EQUIPMENT COMPANY LIMITED", "c5"),
    ("宁德时代新能源科技股份有限公司", "c6"),
    ("宁德时代新能源科技有限公司", "c6"),
    ("Hitachi Energy Limited", "c7"),
    ("China Railway Construction Eng. Group Corp.", "c8"),
    ("隆基绿能科技股份有限公司", "c9"),
    ("Schneider Electric Intl.", "c10"),
    ("Mitsubishi Electric Corp.", "c11"),
    ("三菱电机株式会社", None),  # the same firm in Chinese: no name overlap, stays unmatched
    ("Tianjin Power Tech. Co., Ltd.", "c12"),
    ("广东电网有限责任公司", "c13"),
    ("ＪＩＮＫＯ ＳＯＬＡＲ ＨＯＬＤＩＮＧ ＣＯ．，ＬＴＤ．", "c14"),
    ("中国能源建设集团有限公司", "c15"),
    ("Zhejiang Chint Electrics Company Limited", "c16"),
    ("Baosteel Metal Company Ltd", "c17"),
    ("Guangzhou Metro Grp Co., Ltd.", "c18"),
    ("特变电工股份有限公司", "c19"),
    ("Wuhan Iron & Steel Co., Ltd.", "c20"),
    # buyers the CRM does not have, several close to one it has
    ("江苏亨通光电股份有限公司", None),
    ("ABB Robotics (Shanghai) Co., Ltd.", None),
    ("Siemens Healthineers AG", None),
    ("国家电网浙江省电力有限公司", None),
    ("Shanghai Electric Wind Power Group Co., Ltd.", None),
    ("Tianjin Metro Group Co., Ltd.", None),
    ("广西电网有限责任公司", None),
    ("Trina Solar Co., Ltd.", None),
    ("中国电力建设集团有限公司", None),
    ("Zhejiang Huayou Cobalt Co., Ltd.", None),
    ("Baoshan Iron & Steel Co., Ltd.", None),
    ("Shenzhen Metro Group Co., Ltd.", None),
    ("Hitachi Rail Ltd", None),
)
