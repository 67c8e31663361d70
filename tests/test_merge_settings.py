"""Merge settings: validation, the one source of allowed values, overrides resolved per frame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from doppel.core.config import Settings
from doppel.core.errors import ConfigError
from doppel.merge.blend import BLENDS, BlendMode
from doppel.merge.colour import COLOUR_TRANSFERS, ColourMode
from doppel.merge.settings import (
    CHOICES,
    FrameSettings,
    MaskPolygon,
    MergeSettings,
    Override,
    load_settings,
    parse_assignment,
    parse_override,
    schema,
    validate_partial,
)
from doppel.ops import face
from doppel.ops.mask import MaskMode


def test_defaults_are_valid_and_frozen() -> None:
    s = MergeSettings()
    assert s.colour == "rct" and s.blend == "alpha" and s.mask_mode == "product"
    with pytest.raises(Exception, match="frozen"):
        s.colour = "lct"  # type: ignore[misc]


def test_hash_is_stable_and_changes_with_settings() -> None:
    assert MergeSettings().hash() == MergeSettings().hash()
    assert MergeSettings().hash() != MergeSettings(colour="mkl").hash()


@pytest.mark.parametrize(("key", "value", "words"), [
    ("mask_blur", 1000, "mask_blur=1000"),
    ("face_scale", 3, "less than or equal to 1.2"),
    ("colour", "sepia", "colour=sepia"),
    ("wobble", 1, "unknown setting 'wobble'"),
])
def test_bad_values_name_the_setting(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        MergeSettings().with_changes({key: value})


def test_cli_assignments_are_typed() -> None:
    assert parse_assignment("keep_original=yes") == ("keep_original", True)
    assert load_settings(None, ["mask_blur=20", "colour=idt", "smoothing=off"]) == MergeSettings(
        mask_blur=20, colour="idt", smoothing=False)
    with pytest.raises(ConfigError, match="expected true or false"):
        parse_assignment("smoothing=maybe")
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignment("smoothing")
    poly = load_settings(None, ['mask_polygons=[{"mode": "exclude", "points": [[0, 0], [0.5, 0], [0.5, 0.5]]}]'])
    assert poly.mask_polygons[0].mode == "exclude"
    with pytest.raises(ConfigError, match="JSON"):
        parse_assignment("mask_polygons=[oops")


def test_file_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"colour": "lct", "mask_erode": 4}))
    s = load_settings(f, ["mask_erode=6"])
    assert (s.colour, s.mask_erode) == ("lct", 6)
    f.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        load_settings(f)
    with pytest.raises(ConfigError, match="no such settings file"):
        load_settings(tmp_path / "missing.json")


def test_overrides_resolve_per_frame_later_wins() -> None:
    fs = FrameSettings(MergeSettings(), [
        Override(1, 10, 20, {"colour": "none"}),
        Override(2, 15, 15, {"colour": "hist", "keep_original": True}),
    ])
    assert fs.at(9) == MergeSettings()
    assert fs.at(10).colour == "none"
    assert fs.at(15).colour == "hist" and fs.at(15).keep_original
    assert fs.at(16).colour == "none" and not fs.at(16).keep_original


def test_parse_override() -> None:
    assert parse_override("3-5:keep_original=true,mask_blur=4") == (3, 5, {"keep_original": True, "mask_blur": 4})
    assert parse_override("7:smoothing=false") == (7, 7, {"smoothing": False})
    with pytest.raises(ConfigError, match="face_scale"):
        parse_override("3-5:face_scale=3")
    with pytest.raises(ConfigError, match="FIRST <= LAST"):
        parse_override("5-3:sharpen=1")
    with pytest.raises(ConfigError, match="frame range"):
        parse_override("a-b:sharpen=1")


def test_choices_and_schema_feed_ui() -> None:
    assert CHOICES["mask_mode"] == ("hull", "learned", "product")
    props = schema()["properties"]
    assert props["mask_blur"]["maximum"] == 128 and "description" in props["mask_blur"]
    assert validate_partial({"sharpen": "0.5"}) == {"sharpen": 0.5}


def test_choices_come_from_the_tables() -> None:
    """One list of names per choice: the settings' Literals are the tables' own, in the tables' order."""
    assert CHOICES["colour"] == get_args(ColourMode) and sorted(CHOICES["colour"]) == COLOUR_TRANSFERS.names()
    assert CHOICES["blend"] == get_args(BlendMode) and sorted(CHOICES["blend"]) == BLENDS.names()
    assert CHOICES["mask_mode"] == get_args(MaskMode) and CHOICES["mask_region"] == face.REGIONS


def test_settings_share_the_base_and_name_nested_errors() -> None:
    assert issubclass(MergeSettings, Settings) and issubclass(MaskPolygon, Settings)
    square = [[0, 0], [1, 0], [1, 1]]
    with pytest.raises(ConfigError, match=r"^bad merge settings: mask_polygons\.0\.mode=erase"):
        MergeSettings(mask_polygons=({"mode": "erase", "points": square},))
    with pytest.raises(ConfigError, match="bad MaskPolygon setting: mode='erase'"):
        MaskPolygon(mode="erase", points=square)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown setting 'wobble'"):
        MergeSettings(wobble=1)  # type: ignore[call-arg]
