"""Every shape of exported `.widget` file loads, and builds exactly what upstream builds.

`exports/` holds files written for this project, one per shape found in the wild (see the
table below). Each is built with app-like data by our loader and by upstream's
`WidgetTemplate.from_file`; the results must be equal (same class, same fields).
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from chatkit.widgets import DynamicWidgetRoot, WidgetTemplate
from pydantic import BaseModel

from chatkit_kit.widgets import (
    WidgetBuildError,
    WidgetFileError,
    WidgetPreviewWarning,
    WidgetRegistry,
    load_widget_file,
)

EXPORTS = Path(__file__).resolve().parent / "exports"

# stem -> (the shape, where its preview data is, or None)
SHAPES: dict[str, tuple[str, str | None]] = {
    "shipment_status": ("studio export: url-safe unpadded base64 JSON", "encodedWidget"),
    "lunch_poll": ("standard padded base64 JSON in encodedWidget", "encodedWidget"),
    "seat_picker": ("base64 of the template TEXT in encodedWidget", None),
    "receipt_total": ("template only, no encodedWidget", None),
    "user_profile": ("hand-written, top-level defaultState", "defaultState"),
    "station_select": ("preview data out of date with the template", "encodedWidget"),
    "promo_banner": ("base64 JSON without defaultState; a template that reads no data", None),
}


class Stop(BaseModel):
    code: str
    city: str
    done: bool


class Shipment(BaseModel):
    tracking: str
    status: str
    delivered: bool
    eta: str
    stops: list[Stop]


class Currency(str, Enum):
    EUR = "EUR"


class Receipt(BaseModel):
    total: Currency
    note: str


# What an app's code passes to build(): mappings and pydantic models.
APP_DATA: dict[str, list[Any]] = {
    "shipment_status": [
        {
            "tracking": "AB-1",
            "status": "Delivered",
            "delivered": True,
            "eta": "today",
            "stops": [{"code": "PAR", "city": "Paris", "done": True}],
        },
        Shipment(
            tracking='Q"9',
            status="Late </script>",
            delivered=False,
            eta="",
            stops=[Stop(code="A", city="Å", done=False), Stop(code="B", city="B", done=True)],
        ),
    ],
    "lunch_poll": [
        {"question": "Tea?", "options": [{"label": "Yes", "value": "y"}]},
        {"question": "Nothing", "options": []},
    ],
    "seat_picker": [
        {
            "seats": [
                {"id": "12A", "label": "Window", "price": "$20"},
                {"id": "12B", "label": "Middle", "price": "$0"},
            ]
        },
        {"seats": []},
    ],
    "receipt_total": [
        {"total": "€12.00", "note": "**Paid**"},
        Receipt(total=Currency.EUR, note="enum rendered as upstream renders it"),
    ],
    "user_profile": [
        {
            "user": {
                "avatar": "https://x.test/b.png",
                "email": "b@x.test",
                "profile": {"display_name": "Bo"},
            },
            "flags": {},
        }
    ],
    "promo_banner": [None, {}, {"unused": 1}],
    # The app's real data has `name`, unlike the stale preview data.
    "station_select": [{"stations": [{"id": "e5", "name": "East"}, {"id": "w6", "name": "West"}]}],
}


def upstream(stem: str) -> WidgetTemplate:
    return WidgetTemplate.from_file(str(EXPORTS / f"{stem}.widget"))


def ours(stem: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WidgetPreviewWarning)
        return load_widget_file(EXPORTS / f"{stem}.widget", preview="warn")


def test_the_exports_directory_has_every_shape() -> None:
    assert sorted(p.stem for p in EXPORTS.glob("*.widget")) == sorted(SHAPES)


@pytest.mark.parametrize(
    ("stem", "index"), [(stem, i) for stem, sets in APP_DATA.items() for i in range(len(sets))]
)
def test_builds_exactly_what_upstream_builds(stem: str, index: int) -> None:
    data = APP_DATA[stem][index]
    expected = upstream(stem).build(data)
    built = ours(stem).build(data)
    assert type(built) is DynamicWidgetRoot
    assert built == expected
    assert built.model_dump_json() == expected.model_dump_json()


@pytest.mark.parametrize("stem", sorted(SHAPES))
def test_preview_data_is_found_where_the_shape_keeps_it(stem: str) -> None:
    definition = ours(stem)
    where = SHAPES[stem][1]
    if where is None:
        assert definition.preview_data is None
        if definition.variables:
            assert definition.preview_problem.startswith("has no preview data")
        else:  # checked without data
            assert definition.preview_problem is None
        return
    assert definition.preview_data
    if stem != "station_select":
        assert definition.preview_problem is None
        assert definition.preview() == upstream(stem).build(definition.preview_data)


def test_a_directory_of_every_shape_loads_keyed_by_stem() -> None:
    with pytest.warns(WidgetPreviewWarning) as record:
        registry = WidgetRegistry.from_directory(EXPORTS, preview="warn", keys="stem")
    assert list(registry) == sorted(SHAPES)
    warned = sorted(Path(str(w.message).split(": ", 1)[0]).stem for w in record)
    assert warned == ["receipt_total", "seat_picker", "station_select"]
    for stem, sets in APP_DATA.items():
        for data in sets:
            assert registry.build(stem, data) == upstream(stem).build(data)


def test_two_untitled_exports_collide_by_name() -> None:
    with pytest.raises(
        WidgetFileError, match=r"'Untitled widget' is already used by .*keys=\"stem\""
    ):
        WidgetRegistry.from_directory(EXPORTS, preview="ignore")


def test_a_template_without_variables_is_checked_without_preview_data(tmp_path: Path) -> None:
    definition = load_widget_file(EXPORTS / "promo_banner.widget")  # preview="check"
    assert definition.preview_data is None and definition.variables == frozenset()
    assert definition.preview() == upstream("promo_banner").build()
    broken = tmp_path / "broken.widget"
    broken.write_text(json.dumps({"version": "1.0", "name": "B", "template": '{"type":"Row"}'}))
    with pytest.raises(WidgetFileError, match="does not render: template did not render a widget"):
        load_widget_file(broken)


def test_check_reports_a_stale_preview_naming_file_expression_and_key() -> None:
    path = EXPORTS / "station_select.widget"
    with pytest.raises(WidgetFileError) as excinfo:
        load_widget_file(path)
    assert excinfo.value.path == path
    assert str(excinfo.value) == (
        f"{path}: does not render with its preview data (encodedWidget.defaultState): preview "
        "data at stations[0] has no 'name': the template reads item.name (line 6); it has 'id', "
        "'label'; fix the template or its preview data, or load the file with preview=\"warn\""
    )


def test_warn_loads_a_stale_preview_and_builds_real_data() -> None:
    path = EXPORTS / "station_select.widget"
    with pytest.warns(WidgetPreviewWarning, match=r"stations\[0\] has no 'name'.*item\.name"):
        definition = load_widget_file(path, preview="warn")
    assert definition.preview_problem is not None
    assert "item.name" in definition.preview_problem
    data = APP_DATA["station_select"][0]
    assert definition.build(data) == upstream("station_select").build(data)
    with pytest.raises(WidgetBuildError) as excinfo:
        definition.preview()
    assert "has no 'name'" in excinfo.value.problem


def test_warn_is_an_error_where_warnings_are_errors() -> None:
    # This project's pytest runs with filterwarnings = error, like many CI setups.
    with pytest.raises(WidgetPreviewWarning, match=r"item\.name"):
        load_widget_file(EXPORTS / "station_select.widget", preview="warn")


def test_ignore_loads_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        definition = load_widget_file(EXPORTS / "station_select.widget", preview="ignore")
    assert definition.preview_problem is None
    assert definition.preview_data == {
        "stations": [{"id": "n1", "label": "North"}, {"id": "s2", "label": "South"}]
    }


def test_build_errors_name_the_expression_and_the_missing_key() -> None:
    definition = ours("station_select")
    with pytest.raises(WidgetBuildError) as excinfo:
        definition.build({"stations": [{"id": "a", "name": "A"}, {"id": "b"}]})
    assert excinfo.value.problem == (
        "data at stations[1] has no 'name': the template reads item.name (line 6); it has 'id'"
    )
    with pytest.raises(WidgetBuildError) as excinfo:
        ours("user_profile").build({"user": {"avatar": "", "email": "", "profile": {}}})
    assert excinfo.value.problem.startswith(
        "data at user.profile has no 'display_name': the template reads "
        "user.profile.display_name (line 3); it is empty"
    )


def test_values_tojson_cannot_serialize_are_rendered_in_json_form() -> None:
    class Stamped(BaseModel):
        total: datetime
        note: str

    data = Stamped(total=datetime(2026, 5, 1, 9, 30), note="n")
    with pytest.raises(TypeError, match="not JSON serializable"):
        upstream("receipt_total").build(data)  # upstream stops here
    built = ours("receipt_total").build(data)
    assert built.model_dump(exclude_none=True)["children"][0]["value"] == "2026-05-01T09:30:00"
