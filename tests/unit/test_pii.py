"""Personal data helpers: plates normalised, hashed with a key, masked (DESIGN §8.2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldenkey.contracts import TyreAlert
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
