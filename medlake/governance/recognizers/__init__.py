"""Custom Presidio recognizers for zh/en/de free text, registered by name (`RECOGNIZERS`)."""

from medlake.governance.recognizers import cn_id, finance, latin, phone, web, zh
from medlake.governance.recognizers.registry import LANGUAGES, RECOGNIZERS, build, register

__all__ = [
    "LANGUAGES",
    "RECOGNIZERS",
    "build",
    "cn_id",
    "finance",
    "latin",
    "phone",
    "register",
    "web",
    "zh",
]
