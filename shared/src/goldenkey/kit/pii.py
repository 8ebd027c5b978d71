"""Personal data helpers (DESIGN §8.2): normalise, hash with a key, mask.

Events and logs carry only the keyed hash and the masked form; the raw value stays with the one
service that needs it. Free text (a note, a message) is masked where it leaves a service: the event
models' text fields and the log lines do it themselves (`mask_free_text`, docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from goldenkey.contracts.vocabulary import mask_free_text as mask_free_text  # events mask with it too

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
"""The 31 provinces' characters, the first character of every ordinary civilian plate."""
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
"""The letters plates use: I and O are left out, so as not to be mistaken for 1 and 0."""
_SERIAL = f"[{LETTERS}0-9]"
ORDINARY = re.compile(rf"^[{PROVINCES}][{LETTERS}]{_SERIAL}{{4}}(?:{_SERIAL}|[挂学警港澳领试超])$")
"""陕A12345, 陕A1234学: the province, the issuing city's letter, five letters or digits (the last
may be the character of a trailer, a learner car, a police car…)."""
NEW_ENERGY = re.compile(rf"^[{PROVINCES}][{LETTERS}](?:[ABCDEFGHJK]{_SERIAL}[0-9]{{4}}|[0-9]{{5}}[DF])$")
"""陕AD12345 (a small car: A–E electric, F–K hybrid, then a letter or digit and four digits) or
陕A12345D (a large one: five digits, then D or F)."""
_SEPARATORS = re.compile(r"[\s·•・.\-_]")


class InvalidPlate(ValueError):
    pass


def normalise_plate(text: str) -> str:
    """'陕a·12345 ' → '陕A12345'. Full-width characters, separators and case are forgiven;
    anything that cannot be a Chinese plate is refused, saying why."""
    plate = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).upper())
    if ORDINARY.match(plate) or NEW_ENERGY.match(plate):
        return plate
    raise InvalidPlate(f"{mask_plate(plate)!r} is not a Chinese licence plate: {_why_not_a_plate(plate)}")


def _why_not_a_plate(plate: str) -> str:
    example = "like 陕A12345, or 陕AD12345 for a new-energy car"
    if not plate:
        return f"it is empty; type one {example}"
    if plate[0] not in PROVINCES:
        return f"it must start with a province's character, {example}"
    if "I" in plate or "O" in plate:
        return "plates never use the letters I and O (did you mean 1 or 0?)"
    if len(plate) not in (7, 8):
        return f"it has {len(plate)} characters; a plate has 7 (陕A12345), or 8 for a new-energy car (陕AD12345)"
    if len(plate) == 8:
        return (
            "a new-energy plate is the province, a letter, then one of A–K, a letter or digit and four digits "
            "(陕AD12345), or five digits and D or F (陕A12345D)"
        )
    return f"after the province come a letter and five letters or digits, {example}"


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
