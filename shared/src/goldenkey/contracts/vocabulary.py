"""The hall's shared words: enums and constrained strings that events and services both use.

Adding a value to one of these Literals is a breaking change for readers that validate against the
old list (they would dead-letter the event), so a new value needs a `.v2` event type, not an edit.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, NonNegativeFloat, NonNegativeInt

# --- personal numbers in free text (DESIGN §8.2) -------------------------------------------------

_DIGIT = "[0-9０-９]"
_SEPARATORS = " \u00a0\u3000.-‐‑–－"
_GAPS = _SEPARATORS + ")）"
_GAP = f"[)）]?[{re.escape(_SEPARATORS)}]?"
"""What people type between a number's digits: a space, a dash, a dot, a closing bracket."""


def _digits(first: str, count: int, last: str = _DIGIT) -> str:
    """`count` digits, the first and last of the given classes, with at most a gap between any two."""
    return f"{first}(?:{_GAP}{_DIGIT}){{{count - 2}}}{_GAP}{last}"


_CHINA = "[8８][6６]"
_PERSONAL_NUMBER = re.compile(
    rf"(?<!{_DIGIT})(?:"
    rf"(?P<id18>{_digits('[1-9１-９]', 18, '[0-9０-９XxＸｘ]')})"  # resident ID: 17 digits and a check digit or X
    rf"|(?P<id15>{_digits('[1-9１-９]', 15)})"  # the old 15-digit ID
    rf"|(?:(?:[+＋]|[0０]{{2}}){_CHINA}{_GAP}|[(（][+＋]?{_CHINA}[)）]{_GAP})?"  # +86, 0086, (+86)
    rf"(?P<mobile>[1１]{_GAP}{_digits('[3-9３-９]', 10)})"  # 1[3-9] and nine digits
    rf"|(?P<landline>[0０](?:{_GAP}{_DIGIT}){{10,11}})"  # area code and number: 029-8888 1234, 0755-1234567
    rf")(?!{_DIGIT})"
)
"""Longest first, and bounded by non-digits, so an ID number is not taken for the mobile inside it."""


def _masked(number: str, keep_head: int, keep_tail: int) -> str:
    """`number` with its digits but the first `keep_head` and last `keep_tail` starred; gaps stay."""
    total = sum(c not in _GAPS for c in number)
    seen, out = 0, []
    for c in number:
        if c in _GAPS:
            out.append(c)
            continue
        out.append(c if seen < keep_head or seen >= total - keep_tail else "*")
        seen += 1
    return "".join(out)


def _mask_number(match: re.Match[str]) -> str:
    kind = match.lastgroup
    number = match.group(kind or 0)
    if kind == "mobile":  # +86 and the like stay
        start = match.start("mobile") - match.start()
        return match.group(0)[:start] + _masked(number, 3, 4)
    if kind == "landline":
        area = 3 if number.lstrip(_GAPS)[1:].lstrip(_GAPS)[:1] in "12１２" else 4  # 010, 02x; else 0xxx
        return _masked(number, area, 4)
    return _masked(number, 4, 4)


def mask_free_text(text: str) -> str:
    """Free text with the mainland mobile numbers, landlines and resident ID numbers in it masked
    as a plate is: '电话 138-1234-5678' → '电话 138-****-5678', '6101021990030712 3X' →
    '6101********** 123X'. Its length and everything else stay, so masking twice changes nothing."""
    return _PERSONAL_NUMBER.sub(_mask_number, text)


# --- constrained strings -------------------------------------------------------------------------

Id = Annotated[str, Field(min_length=1, max_length=64)]
"""Any identifier: ticket, window, loan, unit, sku, category, staff, guard…"""

Text = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(mask_free_text)]
"""Free text typed by a person (a note, a message, a resolution). Phone and ID numbers in it are
masked (`mask_free_text`) whoever builds the event: the raw text stays in the service's database."""

ShortText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(mask_free_text)]
"""A short human-readable text (a location in the hall, a reason), masked as `Text` is."""

TicketNumber = Annotated[str, Field(pattern=r"^[A-Z][0-9]{3,5}$", max_length=8)]
"""What the display shows: the category's ticket letter and the day's sequence number ("B023")."""

PlateHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A plate as HMAC-SHA256 hex digest (keyed, so it cannot be reversed by guessing plates)."""

PlateMasked = Annotated[str, Field(pattern=r"^[^*]*\*+[^*]*$", min_length=2, max_length=16)]
"""A plate with its middle hidden ("陕A***45"); the `*` is required so a raw plate cannot slip through."""

Seconds = NonNegativeFloat
Count = NonNegativeInt
Score = Annotated[int, Field(ge=1, le=5)]
"""The five-level government-service scale: 5 very satisfied … 1 very unsatisfied."""

# --- queue -----------------------------------------------------------------------------------------

Channel = Literal["kiosk", "app", "staff"]
Priority = Literal["elderly", "disabled", "pregnant", "with_infant", "appointment"]
Need = Literal["wheelchair", "reading_glasses", "escort", "proxy_service", "mother_baby_room"]
Outcome = Literal["done", "needs_materials", "referred"]
PauseReason = Literal["lunch", "break"]

# --- concierge -------------------------------------------------------------------------------------

AssistanceKind = Literal["proxy_service", "escort", "wheelchair", "mother_baby_room", "vehicle_help", "other"]
ReturnCondition = Literal["ok", "damaged", "lost"]
"""How a unit comes back (`POST /loans/{id}/return`); `lost` is announced as `item.lost`."""
ReturnedCondition = Literal["ok", "damaged"]
"""The conditions `item.returned` carries: a damaged unit goes to maintenance, not the shelf."""
ReturnReminderReason = Literal["due_soon", "visit_ended"]

# --- parking ---------------------------------------------------------------------------------------

IncidentKind = Literal["flat_tyre", "lights_on", "window_open", "blocking", "damage", "other"]
EscalationReason = Literal["no_ticket", "not_paged"]
VehicleSource = Literal["camera", "guard"]
"""Who saw a car come or go: the gate's camera, or a guard who typed the plate."""

# --- feedback --------------------------------------------------------------------------------------

SubjectType = Literal["ticket", "assistance", "incident"]
RatingReason = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,31}$")]
"""attitude, quality, efficiency, environment…: DESIGN leaves the list open, so a slug, not an enum."""
MessageKind = Literal["praise", "suggestion", "complaint"]
AppealGround = Literal["mistaken", "malicious"]
AppealVerdict = Literal["upheld", "rejected"]
ComplaintOrigin = Literal["bad_review", "message", "other"]
ComplaintComplexity = Literal["simple", "complex"]
ComplaintStage = Literal["verify", "rectify", "follow_up"]
"""The stages that have a deadline; closing has none."""

__all__ = [
    "AppealGround",
    "AppealVerdict",
    "AssistanceKind",
    "Channel",
    "ComplaintComplexity",
    "ComplaintOrigin",
    "ComplaintStage",
    "Count",
    "EscalationReason",
    "Id",
    "IncidentKind",
    "MessageKind",
    "Need",
    "Outcome",
    "PauseReason",
    "PlateHash",
    "PlateMasked",
    "Priority",
    "RatingReason",
    "ReturnCondition",
    "ReturnReminderReason",
    "ReturnedCondition",
    "Score",
    "Seconds",
    "ShortText",
    "SubjectType",
    "Text",
    "TicketNumber",
    "VehicleSource",
    "mask_free_text",
]
