"""Personal data helpers: plates normalised, hashed with a key, masked (DESIGN §8.2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
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
