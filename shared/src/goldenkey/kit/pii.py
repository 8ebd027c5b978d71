"""Personal data helpers (DESIGN §8.2): normalise, hash with a key, mask.

Events and logs carry only the keyed hash and the masked form; the raw value stays with the one
service that needs it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

# Chinese plates: a province character, a letter, then 5 (ordinary) or 6 (new-energy) letters/digits.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领"
PLATE = re.compile(rf"^[{PROVINCES}][A-Z][A-HJ-NP-Z0-9]{{4,5}}[A-HJ-NP-Z0-9挂学警港澳]$")


class InvalidPlate(ValueError):
    pass


def normalise_plate(text: str) -> str:
    """'陕a·12345 ' → '陕A12345'. Full-width letters, separators and case are forgiven."""
    folded = unicodedata.normalize("NFKC", text).upper()
    plate = re.sub(r"[\s·•.\-_]", "", folded)
    if not PLATE.match(plate):
        raise InvalidPlate(f"{mask_plate(plate)!r} is not a Chinese licence plate like 陕A12345")
    return plate


def keyed_hash(key: str, value: str, *, purpose: str) -> str:
    """HMAC-SHA256 of a normalised value; `purpose` keeps plate and phone hashes apart."""
    return hmac.new(key.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def plate_hash(key: str, plate: str) -> str:
    return keyed_hash(key, normalise_plate(plate), purpose="plate")


def mask_plate(plate: str) -> str:
    """'陕A12345' → '陕A***45'."""
    if len(plate) <= 4:
        return "*" * len(plate)
    return plate[:2] + "*" * (len(plate) - 4) + plate[-2:]


def normalise_phone(text: str) -> str:
    digits = re.sub(r"[\s\-()]", "", unicodedata.normalize("NFKC", text))
    digits = digits.removeprefix("+86")
    if not re.fullmatch(r"1[3-9]\d{9}", digits):
        raise ValueError("not a mainland mobile number (11 digits starting with 1)")
    return digits


def phone_hash(key: str, phone: str) -> str:
    return keyed_hash(key, normalise_phone(phone), purpose="phone")


def mask_phone(phone: str) -> str:
    """'13912345678' → '139****5678'."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "*" * len(phone)


def mask_name(name: str) -> str:
    """'张三丰' → '张**'."""
    return name[:1] + "*" * (len(name) - 1) if name else name
