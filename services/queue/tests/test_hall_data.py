"""The hall data the queue service ships with: categories, the service catalog and the 58 windows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from goldenkey.queue.data import generate

DATA_DIR = Path(__file__).resolve().parent.parent / "src" / "goldenkey" / "queue" / "data"
REGENERATE = "python services/queue/src/goldenkey/queue/data/generate.py"


def _load(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def categories() -> list[dict[str, Any]]:
    return _load("categories.json")


@pytest.fixture(scope="module")
def catalog() -> list[dict[str, Any]]:
    return _load("catalog.json")


@pytest.fixture(scope="module")
def windows() -> list[dict[str, Any]]:
    return _load("windows.json")


def test_the_committed_files_are_exactly_what_the_generator_writes() -> None:
    for name, data in generate.build().items():
        committed = (DATA_DIR / name).read_text(encoding="utf-8")
        assert committed == generate.render(data), f"{name} is stale or hand-edited; regenerate it with: {REGENERATE}"


def test_the_generator_is_deterministic() -> None:
    assert generate.build() == generate.build()


def test_there_are_at_least_eight_categories_with_distinct_single_letters(categories: list[dict[str, Any]]) -> None:
    assert len(categories) >= 8
    letters = [c["code"] for c in categories]
    assert all(re.fullmatch(r"[A-Z]", letter) for letter in letters), letters
    assert len(set(letters)) == len(letters)


def test_categories_have_distinct_names_and_sensible_targets(categories: list[dict[str, Any]]) -> None:
    for key in ("name_zh", "name_en"):
        names = [c[key] for c in categories]
        assert all(names), key
        assert len(set(names)) == len(names), key
    for c in categories:
        assert isinstance(c["target_wait_min"], int), c
        assert 5 <= c["target_wait_min"] <= 60, c
        assert isinstance(c["service_min"], int), c
        assert 3 <= c["service_min"] <= 60, c


def test_the_catalog_has_at_least_502_items(catalog: list[dict[str, Any]]) -> None:
    assert len(catalog) >= 502


def test_item_codes_are_unique_and_start_with_their_category_letter(
    catalog: list[dict[str, Any]], categories: list[dict[str, Any]]
) -> None:
    letters = {c["code"] for c in categories}
    codes = [item["code"] for item in catalog]
    assert len(set(codes)) == len(codes)
    for item in catalog:
        assert item["category"] in letters, item["code"]
        assert re.fullmatch(r"[A-Z]\d{3}", item["code"]), item["code"]
        assert item["code"].startswith(item["category"]), item["code"]


def test_item_names_are_unique_in_both_languages(catalog: list[dict[str, Any]]) -> None:
    for key in ("name_zh", "name_en"):
        names = [item[key] for item in catalog]
        assert all(names), key
        duplicates = sorted({n for n in names if names.count(n) > 1})
        assert not duplicates, f"duplicate {key}: {duplicates}"


def test_every_category_has_items(catalog: list[dict[str, Any]], categories: list[dict[str, Any]]) -> None:
    used = {item["category"] for item in catalog}
    assert used == {c["code"] for c in categories}


def test_every_item_lists_its_materials_in_both_languages(catalog: list[dict[str, Any]]) -> None:
    for item in catalog:
        materials, materials_en = item["materials"], item["materials_en"]
        assert 1 <= len(materials) <= 6, item["code"]
        assert len(materials_en) == len(materials), item["code"]
        assert all(isinstance(m, str) and m for m in materials + materials_en), item["code"]


def test_item_service_minutes_are_plausible(catalog: list[dict[str, Any]]) -> None:
    for item in catalog:
        assert isinstance(item["service_min"], int), item["code"]
        assert 3 <= item["service_min"] <= 60, item["code"]


def test_there_are_exactly_58_windows_numbered_w01_to_w58(windows: list[dict[str, Any]]) -> None:
    assert [w["id"] for w in windows] == [f"W{n:02d}" for n in range(1, 59)]
    names = [w["name_zh"] for w in windows]
    assert len(set(names)) == len(names)


def test_every_window_serves_existing_categories(
    windows: list[dict[str, Any]], categories: list[dict[str, Any]]
) -> None:
    letters = {c["code"] for c in categories}
    for w in windows:
        assert w["categories"], w["id"]
        assert len(set(w["categories"])) == len(w["categories"]), w["id"]
        assert set(w["categories"]) <= letters, w["id"]


def test_every_category_is_served_by_at_least_two_windows(
    windows: list[dict[str, Any]], categories: list[dict[str, Any]]
) -> None:
    for c in categories:
        serving = [w["id"] for w in windows if c["code"] in w["categories"]]
        assert len(serving) >= 2, (c["code"], serving)


def test_comprehensive_windows_serve_every_category(
    windows: list[dict[str, Any]], categories: list[dict[str, Any]]
) -> None:
    letters = {c["code"] for c in categories}
    comprehensive = [w for w in windows if set(w["categories"]) == letters]
    assert len(comprehensive) >= 2
    assert sum(len(w["categories"]) == 1 for w in windows) > len(windows) / 2, "most windows serve one category"
