"""Personal data helpers: plates normalised, hashed with a key, masked (DESIGN §8.2)."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from goldenkey.contracts import EVENTS, AssistanceRequested, TyreAlert, envelope_for, parse_event
from goldenkey.kit import pii

KEY = "test-key"


@pytest.mark.parametrize("typed", ["陕A12345", "陕a12345", " 陕A·12345 ", "陕A-12345", "陕Ａ１２３４５"])
def test_a_plate_typed_by_hand_normalises_to_the_camera_form(typed: str) -> None:
    assert pii.normalise_plate(typed) == "陕A12345"


def test_a_new_energy_plate_has_six_characters_after_the_letter() -> None:
    assert pii.normalise_plate("陕AD12345") == "陕AD12345"


@pytest.mark.parametrize("bad", ["", "A12345", "陕112345", "陕A123", "陕A1234567", "XYZ"])
def test_something_that_is_not_a_plate_is_refused(bad: str) -> None:
    with pytest.raises(pii.InvalidPlate):
        pii.normalise_plate(bad)


def test_the_plate_hash_is_the_same_for_every_spelling_and_differs_per_key() -> None:
    assert pii.plate_hash(KEY, "陕a·12345") == pii.plate_hash(KEY, "陕A12345")
    assert pii.plate_hash(KEY, "陕A12345") != pii.plate_hash("another-key", "陕A12345")
    assert pii.plate_hash(KEY, "陕A12345") != pii.plate_hash(KEY, "陕A12346")


def test_plate_hash_and_mask_fit_the_event_contract() -> None:
    plate = pii.normalise_plate("陕A12345")
    alert = TyreAlert(
        incident_id="i-1", kind="flat_tyre", plate_hash=pii.plate_hash(KEY, plate), plate_masked=pii.mask_plate(plate)
    )
    assert alert.plate_masked == "陕A***45"
    assert re.fullmatch(r"[0-9a-f]{64}", alert.plate_hash or "")


def test_a_phone_is_masked_and_hashed_apart_from_plates() -> None:
    phone = pii.normalise_phone("+86 139-1234-5678")
    assert phone == "13912345678"
    assert pii.mask_phone(phone) == "139****5678"
    assert pii.phone_hash(KEY, phone) != pii.keyed_hash(KEY, phone, purpose="plate")
    with pytest.raises(ValueError, match="mobile"):
        pii.normalise_phone("12345")


@given(st.text(min_size=5, max_size=12))
def test_a_masked_value_never_shows_its_middle(value: str) -> None:
    masked = pii.mask_plate(value)
    assert len(masked) == len(value)
    assert masked[2:-2] == "*" * (len(value) - 4)


# --- real-looking plates ----------------------------------------------------------------------------

GOOD_PLATES = [
    # ordinary: the province, the city's letter, five letters or digits
    ("陕A12345", "陕A12345"),
    ("京B8K7L2", "京B8K7L2"),
    ("粤Z1234港", "粤Z1234港"),
    # new energy, small: one of A–K, a letter or digit, four digits
    ("陕AD12345", "陕AD12345"),
    ("粤BF01234", "粤BF01234"),
    ("沪ADA1234", "沪ADA1234"),
    # new energy, large: five digits, then D or F
    ("陕A12345D", "陕A12345D"),
    ("苏E12345F", "苏E12345F"),
    # a trailer, a learner car
    ("陕A1234挂", "陕A1234挂"),
    ("陕A1234学", "陕A1234学"),
    # as people type them
    ("粤ＢＦ０１２３４", "粤BF01234"),
    ("陕ad12345", "陕AD12345"),
    ("京b8k7l2", "京B8K7L2"),
    ("陕A 12345", "陕A12345"),
    (" 陕 A 1234 学 ", "陕A1234学"),
    ("陕A\u300012345", "陕A12345"),
    ("陕A·D12345", "陕AD12345"),
    ("粤B·F0123·4", "粤BF01234"),
    ("陕A・12345", "陕A12345"),
    ("陕A-12345D", "陕A12345D"),
    ("陕A－12345", "陕A12345"),
    ("苏e.12345f", "苏E12345F"),
]


@pytest.mark.parametrize(("typed", "plate"), GOOD_PLATES)
def test_a_real_plate_however_typed_normalises_to_its_camera_form(typed: str, plate: str) -> None:
    assert pii.normalise_plate(typed) == plate
    assert pii.normalise_plate(plate) == plate, "normalising twice changes nothing"


I_AND_O = "never use the letters I and O"
PROVINCE = "must start with a province's character"
NEW_ENERGY = "a new-energy plate is the province, a letter, then one of A–K"
ORDINARY = "after the province come a letter and five letters or digits"
EMPTY = "it is empty"

BAD_PLATES = [
    ("陕IA2345", I_AND_O),
    ("陕AI2345", I_AND_O),
    ("陕A12O45", I_AND_O),
    ("陕A1234O", I_AND_O),
    ("陕AD1234O", I_AND_O),
    ("陕ao1234", I_AND_O),
    ("陕Ａｏ１２３４", I_AND_O),
    ("港A12345", PROVINCE),
    ("台A12345", PROVINCE),
    ("使A12345", PROVINCE),
    ("A123456", PROVINCE),
    ("1A12345", PROVINCE),
    ("陕A1234", "it has 6 characters"),
    ("陕A", "it has 2 characters"),
    ("陕AD123456", "it has 9 characters"),
    ("陕A123456789", "it has 11 characters"),
    ("陕AZ12345", NEW_ENERGY),
    ("陕AL12345", NEW_ENERGY),
    ("陕A12345X", NEW_ENERGY),
    ("陕AD1234X", NEW_ENERGY),
    ("陕A1234DD", NEW_ENERGY),
    ("京A12345警", NEW_ENERGY),
    ("陕112345", ORDINARY),
    ("陕A1234!", ORDINARY),
    ("陕A1234车", ORDINARY),
    ("", EMPTY),
    ("   ", EMPTY),
    ("·-· ", EMPTY),
    ("--", EMPTY),
    ("!!!", PROVINCE),
    ("？？", PROVINCE),
]


@pytest.mark.parametrize(("typed", "reason"), BAD_PLATES)
def test_a_plate_that_cannot_be_is_refused_saying_why(typed: str, reason: str) -> None:
    with pytest.raises(pii.InvalidPlate, match=re.escape(reason)) as refused:
        pii.normalise_plate(typed)
    assert "is not a Chinese licence plate" in str(refused.value)
    assert isinstance(refused.value, ValueError), "an input validator turns it into a 422"


@pytest.mark.parametrize("typed", ["陕AI2345", "港A12345", "陕AZ12345", "陕A1234!", "陕A123456789"])
def test_a_refused_plate_is_named_only_masked(typed: str) -> None:
    with pytest.raises(pii.InvalidPlate) as refused:
        pii.normalise_plate(typed)
    message = str(refused.value)
    assert typed not in message
    assert message.startswith(repr(pii.mask_plate(typed)))


SERIAL = pii.LETTERS + "0123456789"
PLATES = st.one_of(
    st.tuples(  # ordinary
        st.sampled_from(pii.PROVINCES),
        st.sampled_from(pii.LETTERS),
        st.text(SERIAL, min_size=4, max_size=4),
        st.sampled_from([*SERIAL, "挂", "学"]),
    ),
    st.tuples(  # new energy, small
        st.sampled_from(pii.PROVINCES),
        st.sampled_from(pii.LETTERS),
        st.sampled_from("ABCDEFGHJK"),
        st.sampled_from(SERIAL),
        st.text("0123456789", min_size=4, max_size=4),
    ),
    st.tuples(  # new energy, large
        st.sampled_from(pii.PROVINCES),
        st.sampled_from(pii.LETTERS),
        st.text("0123456789", min_size=5, max_size=5),
        st.sampled_from("DF"),
    ),
).map("".join)


@settings(derandomize=True, deadline=None)
@given(plate=PLATES, separator=st.sampled_from(["", " ", "·", "-", "\u3000"]), lower=st.booleans())
def test_any_plate_of_the_rules_normalises_to_itself_however_it_is_spelled(
    plate: str, separator: str, lower: bool
) -> None:
    assert pii.normalise_plate(plate) == plate
    typed = plate[:2] + separator + (plate[2:].lower() if lower else plate[2:])
    assert pii.normalise_plate(typed) == plate


# --- phone and ID numbers in free text ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "masked"),
    [
        ("请回电13812345678，谢谢", "请回电138****5678，谢谢"),
        ("tel 138 1234 5678", "tel 138 **** 5678"),
        ("手机：+86 139-1234-5678", "手机：+86 139-****-5678"),
        ("(+86)15912345678", "(+86)159****5678"),
        ("００８６１３８１２３４５６７８", "００８６１３８****５６７８"),
        ("身份证 61010219900307123X 遗失", "身份证 6101**********123X 遗失"),
        ("身份证610102 19900307 1234", "身份证6101** ******** 1234"),
        ("旧证 610102900307123", "旧证 6101*******7123"),
        ("家里 029-88881234", "家里 029-****1234"),
        ("座机(0755) 1234567", "座机(0755) ***4567"),
    ],
)
def test_phone_and_id_numbers_in_free_text_are_masked_as_a_plate_is(typed: str, masked: str) -> None:
    assert pii.mask_free_text(typed) == masked


@pytest.mark.parametrize(
    "text",
    [
        "A023 请到 W09 窗口",
        "14:30 前来取件，票号 B101、B102",
        "陕A12345 左前轮亏气，停在 B2-017 车位",
        "2026-11-25 09:00 开门；12345 热线；110、120",
        "共 3 位，押金 ¥1,234.50，订单 2026112509",
        "12012345678 is not a mobile (1, then 2)",
        "a ticket, a plate and a time are no personal numbers",
    ],
)
def test_ordinary_text_ticket_numbers_times_and_plates_are_left_alone(text: str) -> None:
    assert pii.mask_free_text(text) == text


DIGITS = "0123456789"
GAPS = ["", " ", "-", "."]


@st.composite
def mobiles(draw: st.DrawFn) -> tuple[str, int]:
    """A mainland mobile as people write it, and how many of its digits the mask must hide."""
    digits = "1" + draw(st.sampled_from("3456789")) + draw(st.text(DIGITS, min_size=9, max_size=9))
    gap = draw(st.sampled_from(GAPS))
    number = f"{digits[:3]}{gap}{digits[3:7]}{gap}{digits[7:]}"
    prefix = draw(st.sampled_from(["", "+86", "+86 ", "+86-", "0086", "(+86)", "（+86）"]))
    if draw(st.booleans()):
        number = number.translate(FULL_WIDTH)
    return prefix + number, 4


@st.composite
def id_numbers(draw: st.DrawFn) -> tuple[str, int]:
    """A resident ID number (18 characters, or the old 15 digits), and how many characters the mask hides."""
    region = draw(st.sampled_from("123456789")) + draw(st.text(DIGITS, min_size=5, max_size=5))
    born = draw(st.dates(date(1900, 1, 1), date(2099, 12, 31))).strftime("%Y%m%d")
    if draw(st.booleans()):
        number = region + born + draw(st.text(DIGITS, min_size=3, max_size=3)) + draw(st.sampled_from([*DIGITS, "X"]))
        hidden = 10
    else:
        number = region + born[2:] + draw(st.text(DIGITS, min_size=3, max_size=3))
        hidden = 7
    if draw(st.booleans()):
        gap = draw(st.sampled_from(GAPS[1:]))
        number = f"{number[:6]}{gap}{number[6:-4]}{gap}{number[-4:]}"
    return number, hidden


FULL_WIDTH = str.maketrans(DIGITS, "０１２３４５６７８９")
WORDS = st.text(st.sampled_from("请问在的车窗口号码左前轮亏气谢谢 abcXYZ,!?（）"), min_size=1, max_size=12).filter(
    lambda text: not text[0].isspace() and not text[-1].isspace()
)
ORDINARY_PIECES = st.one_of(
    WORDS,
    PLATES,
    st.builds(lambda letter, n: f"{letter}{n:03d}", st.sampled_from("ABCDEF"), st.integers(0, 999)),  # A023
    st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59)),  # 14:30
    st.dates().map(lambda day: day.isoformat()),  # 2026-11-25
    st.integers(0, 99_999).map(str),  # counts, the 12345 hotline
)
JOINERS = st.sampled_from(["，", "。", "；", "、", " 电话 ", "：", "/"])
"""Between pieces: never a digit nor a gap, so two pieces never run into one number."""


@settings(derandomize=True, deadline=None, max_examples=300)
@given(
    pieces=st.lists(
        st.one_of(ORDINARY_PIECES.map(lambda text: (text, 0)), mobiles(), id_numbers()), min_size=1, max_size=8
    ),
    joiner=JOINERS,
)
def test_no_mobile_or_id_number_survives_and_nothing_else_changes(pieces: list[tuple[str, int]], joiner: str) -> None:
    text = joiner.join(piece for piece, _ in pieces)
    masked = pii.mask_free_text(text)
    assert len(masked) == len(text)
    assert pii.mask_free_text(masked) == masked, "masking twice changes nothing"
    at = 0
    for piece, hidden in pieces:
        shown = masked[at : at + len(piece)]
        assert shown.count("*") == hidden, (piece, shown)  # 138****5678, 6101**********123X; others untouched
        if not hidden:
            assert shown == piece
        at += len(piece) + len(joiner)


@settings(derandomize=True, deadline=None)
@given(st.text())
def test_any_text_keeps_its_length_and_masks_at_most_once(text: str) -> None:
    masked = pii.mask_free_text(text)
    assert len(masked) == len(text)
    assert pii.mask_free_text(masked) == masked


# --- events mask their free text ---------------------------------------------------------------------

PERSONAL = "请联系家属 +86 138-1234-5678，身份证 61010219900307123X，车停 B2 区，谢谢，麻烦尽快处理这件事情"
"""Longer than any id (64 characters), so only the fields that take free text accept it."""


def free_text_fields() -> list[tuple[str, str, TypeAdapter[Any]]]:
    """(event type, field, its validator) for every field of every event that accepts `PERSONAL`."""
    found = []
    for event_type, spec in sorted(EVENTS.items()):
        for name, field in spec.model.model_fields.items():
            adapter: TypeAdapter[Any] = TypeAdapter(field.rebuild_annotation())
            with contextlib.suppress(ValidationError):
                adapter.validate_python(PERSONAL)
                found.append((event_type, name, adapter))
    return found


def test_the_events_have_free_text_fields_notes_messages_locations_and_reasons() -> None:
    fields = {name for _, name, _ in free_text_fields()}
    assert {"note", "message", "text", "location", "reason", "resolution"} <= fields


@pytest.mark.parametrize(
    ("event_type", "name", "adapter"),
    [pytest.param(*field, id=f"{field[0]}.{field[1]}") for field in free_text_fields()],
)
def test_every_free_text_field_of_every_event_masks_phone_and_id_numbers(
    event_type: str, name: str, adapter: TypeAdapter[Any]
) -> None:
    value = adapter.validate_python(PERSONAL)
    assert "12345678" not in value.replace("-", ""), (event_type, name, value)
    assert "1990030712" not in value, (event_type, name, value)
    assert "+86 138-****-5678" in value
    assert "6101**********123X" in value
    assert value.replace("*", "") != PERSONAL.replace("*", "")


def test_an_event_masks_its_note_whoever_builds_it_and_however_it_is_read_back() -> None:
    request = AssistanceRequested(
        assistance_id="a-1", kind="other", location="东门 13912345678 旁", note="家属电话 13812345678"
    )
    assert (request.note, request.location) == ("家属电话 138****5678", "东门 139****5678 旁")
    envelope = envelope_for(request, time=datetime.now(UTC))
    _, parsed = parse_event(envelope.to_bytes())
    assert parsed == request, "masked once, masking again on reading changes nothing"
    assert "13812345678" not in envelope.to_bytes().decode()
