"""Chinese personal names (surname + given name, next to a context word) and postal addresses."""

from __future__ import annotations

from presidio_analyzer import Pattern

from medlake.governance.recognizers.base import HAN, ContextPatternRecognizer
from medlake.governance.recognizers.registry import register

# The ~400 most common single surnames (rare ones too: 邝 覃 岑 隗 晁 钮 ...), without those
# that are everyday words or word starts; those are WORD_SURNAMES below.
SURNAMES = "".join(
    dict.fromkeys(
        "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏"
        "吕丁沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万"
        "钱严覃武戴莫孔汤温康施文牛樊葛邢齐乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿兰焦俞柳祝宁符舒阮柯纪梅"
        "童凌毕季裴霍涂苗谷盛曲翁冉骆蓝游辛靳柴蒙鲍华喻祁蒲房滕屈饶牟艾尤穆农卓吉缪简芦麦褚娄窦戚岑"
        "党卜晏卫柏宗瞿桂佟臧闵苟邬卞姬栾隋刁荣巫寇桑郎甄丛仲虞敖巩佘池苑迟邝萧左甘祝包尚易乔黎"
        "宫费冷席米瞿邸沙荆鞠惠冀郁胥栗燕楚鄢谌奚皮粟冼蔺楼闻厉伊仝郜阚帅屠豆朴廉禹祖漆卿狄晋"
        "芮扈晁阙戈伏鹿薄雍辜裘亓邰赫杭况逯隆茹诸慕危嵇湛宾戎勾茅尉冶檀昝尧佴眭隗钮訾郗喻"
        "庹汝缑仇鲜衡巴丰揭"
    )
)
# Surnames that are also everyday words or start them (安装, 关于, 常规, 项目, 原因 ...): only
# right after a context word, or at the start of a phrase before a title.
WORD_SURNAMES = "于和向时任安常关成解单项连全明原强路车海花平国相门云都元信展智由修印干支麻班管习"
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
# Everyday words that start with a surname character (高级工程师 is a senior engineer,
# 安装工程师 an installation engineer, 责任护士 the nurse in charge).
NOT_NAMES = (
    "金牌", "华为", "江苏", "江西", "马上", "方面", "方案", "程序", "温度", "周末", "高级", "温州",
    "安装", "维修", "应用", "项目", "区域", "麻醉", "病房", "门诊", "值班", "主管", "管床", "责任",
    "实习", "原厂", "全科", "常规", "常年", "明天", "明年", "连续", "单位", "强制", "海外", "国内",
    "国外", "平台", "信息", "支持", "修理", "干燥", "花费", "相关", "时间", "和平", "于是", "向来",
    "任何", "安全", "关于", "关闭", "成功", "解决", "路由", "车间", "云端", "都市", "元件", "展会",
    "智能", "由于", "印刷", "班组", "管理", "习惯", "夜班", "白班", "戴上", "钱款", "高压", "龙头",
    "史上", "包装", "包括", "尚未", "易损", "沙发", "楼层", "费用", "冷藏", "米长", "皮管",
    "巴士", "丰富", "宾馆", "施工", "童工", "伏特", "燕窝", "谷歌", "谢谢", "万一", "万元", "房间",
)  # fmt: skip
# Two-character words whose second character is a surname (感谢张医生: 谢 is not a name).
WORD_TAILS = (
    "感谢", "多谢", "答谢", "致谢", "对方", "双方", "各方", "院方", "厂方", "我方", "甲方", "乙方",
    "医方", "患方", "一方", "地方", "配方", "处方", "前方", "后方", "官方", "客服", "总经", "副主",
    "大夫", "护士", "科室", "医院", "手术", "设备", "技术", "维修", "售后", "保修", "同事",
)  # fmt: skip
# Words before a name ...
BEFORE = (
    "患者家属", "陪同家属", "患者", "病人", "病患", "患儿", "家属", "联系人", "客户", "用户",
    "使用者", "主治医生", "医生", "大夫", "护士长", "护士", "工程师", "技术员", "操作员", "经办人",
    "负责人", "收件人", "签收人", "报告人", "投诉人", "报修人", "申请人", "监护人", "陪护",
    "对接人", "联络人", "经理", "主任", "科长", "院长", "姓名", "由", "经",
)  # fmt: skip
# ... and titles after one (工 as in 李工, 总 as in 王总, when no word goes on with them).
TITLES = (
    "先生", "女士", "小姐", "医生", "医师", "大夫", "护士长", "护士", "工程师", "老师", "主任",
    "经理", "教授", "师傅", "院长", "科长", "处长", "部长", "组长", "博士", "同志", "阿姨",
    "总监", "总经理",
    "总(?![部结共是计体量数线装价额之的])",
    "工(?![作程厂单具艺人资位业序期时地装件])",
)  # fmt: skip
# What may directly follow a name found after a context word.
FOLLOW = (
    *TITLES,
    "反映", "反馈", "投诉", "来电", "致电", "报修", "要求", "表示", "确认", "告知", "提出",
    "发现", "称", "说", "已", "于", "在", "和", "与", "及", "等", "的", "也", "本人", "电话",
    "手机", "联系", "签字", "签收", "今天", "昨天", "今日", "昨日", "当天", "因", "近日",
    "使用", "出现", "自述", "诉", "同意", "拒绝", "未", "无", "对", "将", "请", "希望",
)  # fmt: skip

_ANY_SURNAME = f"(?:{'|'.join(COMPOUND_SURNAMES)}|[{SURNAMES}{WORD_SURNAMES}])"
_GIVEN = f"(?:(?!{'|'.join(NOT_NAMES)})(?![{STOP}])[{HAN}])"
_NOT_WORD = (
    f"(?!{'|'.join(NOT_NAMES)})(?!" + "|".join(f"(?<={w[0]}){w[1]}" for w in WORD_TAILS) + ")"
)
# A phrase starts after a non-Chinese character or one of these words and particles.
_PARTICLES = "与|和|跟|同|及|请|让|叫|找|给|向|对|被|把|将|是|感谢|联系|致电|通知"
_PHRASE = f"(?<=^|[^{HAN}]|{'|'.join(BEFORE)}|{_PARTICLES})"
_TITLE = f"(?={'|'.join(TITLES)})"


@register("zh_person")
class ChinesePersonRecognizer(ContextPatternRecognizer):
    """患者王伟 / 联系人：李娜 / 张伟先生 / 经刘洋医生确认 / 李工 / 邝志强: the name, never the
    context word or title; a surname that is also an everyday word only after a context word
    or at the start of a phrase."""

    ENTITY = "PERSON"
    LANGUAGES = ("zh",)
    LABELLED = False
    PATTERNS = (
        Pattern(
            "after_context",
            "(?:" + "|".join(BEFORE[:-2]) + r")[：:\s]?"
            f"(?P<pii>{_NOT_WORD}{_ANY_SURNAME}{_GIVEN}{{1,2}})"
            f"(?=(?:{'|'.join(FOLLOW)}|[^{HAN}]|$))",
            0.85,
        ),
        # a Chinese name quoted in a Latin-script sentence: "Kontakt: 张伟", "Mr. 王建国"
        Pattern(
            "after_latin_context",
            r"(?<!\p{L})(?i:contact|kontakt|ansprechpartner(?:in)?|patient(?:in)?|customer|"
            r"kunde|kundin|engineer|techniker|nurse|doctor|reporter|name|mr|mrs|ms|dr|herr|frau)"
            r"\.?[：:]?[ ]{0,2}"
            f"(?P<pii>{_NOT_WORD}{_ANY_SURNAME}{_GIVEN}{{1,2}})"
            f"(?=(?:{'|'.join(FOLLOW)}|[^{HAN}]|$))",
            0.8,
        ),
        Pattern(
            "before_title",
            f"(?P<pii>{_NOT_WORD}(?:{'|'.join(COMPOUND_SURNAMES)}|[{SURNAMES}]){_GIVEN}{{0,2}}){_TITLE}",
            0.85,
        ),
        Pattern(
            "phrase_before_title",
            f"{_PHRASE}(?P<pii>{_NOT_WORD}{_ANY_SURNAME}{_GIVEN}{{0,2}}){_TITLE}",
            0.85,
        ),
    )
    CONTEXT = BEFORE + tuple(t[:2] for t in TITLES)


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
