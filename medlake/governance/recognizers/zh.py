"""Chinese personal names (surname + given name, next to a context word) and postal addresses."""

from __future__ import annotations

from presidio_analyzer import Pattern

from medlake.governance.recognizers.base import HAN, ContextPatternRecognizer
from medlake.governance.recognizers.registry import register

# Common single surnames, without those that are everyday function words (和, 于, 向, 时 ...).
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万"
    "钱严覃武戴莫孔汤温康施文牛樊葛邢齐乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿兰焦俞柳祝宁符舒阮柯纪梅"
    "童凌毕季裴霍涂苗谷盛曲翁冉骆蓝游辛靳柴蒙鲍华喻祁蒲房滕屈饶牟艾尤穆农卓吉缪简芦麦褚娄窦戚岑"
    "党卜晏卫柏宗瞿桂佟臧闵苟邬卞姬栾隋刁荣巫寇桑郎甄丛仲虞敖巩佘池麻苑迟邝"
)
COMPOUND_SURNAMES = (
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "司徒",
    "夏侯", "独孤", "长孙", "宇文", "端木", "轩辕", "南宫", "西门", "呼延", "钟离", "澹台",
)  # fmt: skip
# Characters that are not part of a given name: particles, verbs that follow a name, and the
# suffixes of places and organisations (苏州市 is a city, not Mr 苏).
STOP = (
    "的了已在是和与及等说称于对将把被从也都就又还因未不没要请反投来报确表向给让为"
    "市省州区县镇乡村路街院科部司厂局所室号级"
)
# Everyday words that start with a surname character (高级工程师 is a senior engineer).
NOT_NAMES = ("金牌", "华为", "江苏", "江西", "马上", "方面", "方案", "程序", "温度", "周末")
# Words before a name ...
BEFORE = (
    "患者家属", "患者", "病人", "病患", "患儿", "家属", "联系人", "客户", "用户", "主治医生",
    "医生", "大夫", "护士长", "护士", "工程师", "技术员", "操作员", "经办人", "负责人",
    "收件人", "签收人", "报告人", "投诉人", "姓名",
)  # fmt: skip
# ... and titles after one.
TITLES = (
    "先生", "女士", "小姐", "医生", "大夫", "护士", "工程师", "老师", "主任", "经理", "教授",
    "师傅", "院长", "博士", "同志", "阿姨",
)  # fmt: skip
# What may directly follow a name found after a context word.
FOLLOW = (
    *TITLES,
    "反映", "反馈", "投诉", "来电", "致电", "报修", "要求", "表示", "确认", "告知", "提出",
    "发现", "称", "说", "已", "于", "在", "和", "与", "及", "等", "的", "也", "本人", "电话",
    "手机", "联系", "签字", "签收",
)  # fmt: skip

_NAME = (
    f"(?!{'|'.join(NOT_NAMES)})(?:{'|'.join(COMPOUND_SURNAMES)}|[{SURNAMES}])"
    f"(?:(?![{STOP}])[{HAN}]){{1,2}}"
)


@register("zh_person")
class ChinesePersonRecognizer(ContextPatternRecognizer):
    """患者王伟 / 联系人：李娜 / 张伟先生 / 经刘洋医生确认: the name, never the context word."""

    ENTITY = "PERSON"
    LANGUAGES = ("zh",)
    LABELLED = False
    PATTERNS = (
        Pattern(
            "after_context",
            "(?:" + "|".join(BEFORE) + r")[：:\s]?"
            f"(?P<pii>{_NAME})(?=" + "|".join(FOLLOW) + f"|[^{HAN}]|$)",
            0.85,
        ),
        Pattern("before_title", f"(?P<pii>{_NAME})(?=" + "|".join(TITLES) + ")", 0.85),
    )
    CONTEXT = BEFORE + TITLES


PROVINCES = (
    "北京市", "天津市", "上海市", "重庆市", "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省",
    "江苏省", "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省",
    "广东省", "海南省", "四川省", "贵州省", "云南省", "陕西省", "甘肃省", "青海省", "台湾省",
    "内蒙古自治区", "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区",
    "香港特别行政区", "澳门特别行政区",
)  # fmt: skip
_C = f"[{HAN}]"
# Place names do not contain the words that introduce an address (寄至深圳市 -> 深圳市).
_P = f"(?:(?![地址住寄至到往送发为在于])[{HAN}])"
_CITY = f"{_P}{{1,4}}?(?:市|州|盟|地区)"
_DISTRICT = f"{_P}{{1,6}}?(?:区|县|市|旗|镇|乡|街道)"
_ROAD = f"[{HAN}\\d]{{1,12}}?(?:路|街|大道|大街|道|巷|弄|胡同|里)"
_NUMBER = r"\d{1,5}(?:-\d{1,5})?号"
_UNIT = f"(?:{_C}{{0,8}}?\\d{{1,5}}(?:栋|幢|座|号楼|单元|楼|层|室|房))*"
# Where an address without a province may start.
_START = f"(?<=^|[^{HAN}]|地址|住址|住在|家住|位于|寄至|寄到|寄往|送至|发往)"


@register("zh_address")
class ChineseAddressRecognizer(ContextPatternRecognizer):
    """省/市/区/县 + 路/街 + 号 (+ 栋/单元/室): 广东省深圳市南山区科技园路88号3栋1205室."""

    ENTITY = "ADDRESS"
    LANGUAGES = ("zh",)
    LABELLED = False
    PATTERNS = (
        Pattern(
            "cn_address",
            f"(?:(?:{'|'.join(PROVINCES)})(?:{_CITY})?|{_START}{_CITY}|{_START}(?={_DISTRICT}))"
            f"(?:{_DISTRICT})?{_ROAD}{_NUMBER}{_UNIT}",
            0.8,
        ),
    )
    CONTEXT = ("地址", "住址")
