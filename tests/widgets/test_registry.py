"""WidgetRegistry: load-time checks with preview data, and building widgets by name."""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from chatkit_kit.widgets import (
    WidgetBuildError,
    WidgetFileError,
    WidgetRegistry,
    load_widget_file,
)

TEMPLATE = (
    '{"type":"Card","children":[{"type":"Title","value":{{ title | tojson }}},'
    '{"type":"Text","value":{{ ("Due " ~ due) | tojson }}}'
    '{% for tag in tags %},{"type":"Badge","label":{{ tag | tojson }}}{% endfor %}]}'
)
PREVIEW = {"title": "Write report", "due": "2026-02-01", "tags": ["work", "urgent"]}


def encoded_widget(state: dict[str, Any]) -> str:
    """What widgets.chatkit.studio exports: unpadded base64url JSON with `defaultState`."""
    payload = {"id": "w-1", "name": "Task card", "view": "<Card/>", "defaultState": state}
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def exported(name: str = "Task", template: str = TEMPLATE, **extra: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "version": "1.0",
        "name": name,
        "template": template,
        "jsonSchema": {"type": "object", "properties": {"title": {"type": "string"}}},
        "outputJsonPreview": {"type": "Card", "children": []},
        "encodedWidget": encoded_widget(PREVIEW),
    }
    definition.update(extra)
    return definition


def write(directory: Path, filename: str, content: Any) -> Path:
    path = directory / filename
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_loads_builds_and_previews(tmp_path: Path) -> None:
    write(tmp_path, "task.widget", exported())
    write(
        tmp_path,
        "hello.widget",
        {
            "version": "1.0",
            "name": "Hello",
            "template": '{"type":"Basic","children":[{"type":"Text","value":{{ who | tojson }}}]}',
            "defaultState": {"who": "world"},
        },
    )
    write(tmp_path, "notes.txt", "ignored")
    registry = WidgetRegistry.from_directory(tmp_path)
    assert list(registry) == ["Hello", "Task"]
    assert len(registry) == 2
    assert registry["Task"].path == tmp_path / "task.widget"
    assert registry["Task"].preview_data == PREVIEW
    assert registry["Task"].variables == {"title", "due", "tags"}

    widget = registry.build("Task", {"title": "Ship", "due": "Friday", "tags": ["x"]})
    assert widget.model_dump(exclude_none=True) == {
        "type": "Card",
        "children": [
            {"type": "Title", "value": "Ship"},
            {"type": "Text", "value": "Due Friday"},
            {"type": "Badge", "label": "x"},
        ],
    }
    assert registry.preview("Hello").model_dump(exclude_none=True) == {
        "type": "Basic",
        "children": [{"type": "Text", "value": "world"}],
    }


def test_templates_are_loaded_once(tmp_path: Path) -> None:
    path = write(tmp_path, "task.widget", exported())
    registry = WidgetRegistry.from_directory(tmp_path)
    path.unlink()
    assert registry.build("Task", PREVIEW).type == "Card"


def test_pydantic_data_is_dumped_as_json(tmp_path: Path) -> None:
    class Task(BaseModel):
        title: str
        due: date
        tags: list[str] = []

    write(tmp_path, "task.widget", exported())
    registry = WidgetRegistry.from_directory(tmp_path)
    widget = registry.build("Task", Task(title="T", due=date(2026, 3, 4)))
    assert widget.model_dump(exclude_none=True)["children"][1]["value"] == "Due 2026-03-04"


def test_build_errors_name_the_widget_and_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "task.widget", exported())
    registry = WidgetRegistry.from_directory(tmp_path)
    with pytest.raises(WidgetBuildError) as excinfo:
        registry.build("Task", {"title": "x", "tags": []})
    assert str(excinfo.value) == f"widget 'Task' ({path}): data is missing 'due'"
    with pytest.raises(WidgetBuildError, match="data is not JSON-serializable"):
        registry.build("Task", {"title": object(), "due": "d", "tags": []})
    with pytest.raises(WidgetBuildError, match="template error: TypeError: 'NoneType' object"):
        registry.build("Task", {"title": "x", "due": "d", "tags": None})
    with pytest.raises(KeyError, match="no widget named 'Nope'; known widgets: 'Task'"):
        registry.build("Nope", {})


def test_missing_nested_values_are_reported(tmp_path: Path) -> None:
    template = '{"type":"Card","children":[{"type":"Text","value":{{ user.name | tojson }}}]}'
    write(
        tmp_path,
        "user.widget",
        exported(name="User", template=template, defaultState={"user": {"name": "A"}}),
    )
    registry = WidgetRegistry.from_directory(tmp_path)
    with pytest.raises(WidgetBuildError, match="data is missing a value the template reads"):
        registry.build("User", {"user": {}})


def test_recursive(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "task.widget", exported())
    write(tmp_path, "top.widget", exported(name="Top"))
    assert list(WidgetRegistry.from_directory(tmp_path)) == ["Top"]
    assert list(WidgetRegistry.from_directory(tmp_path, recursive=True)) == ["Task", "Top"]


def test_directory_rules(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be an absolute path"):
        WidgetRegistry.from_directory("widgets")
    with pytest.raises(ValueError, match="does not exist"):
        WidgetRegistry.from_directory(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"contains no \.widget files"):
        WidgetRegistry.from_directory(tmp_path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "must contain a JSON object, found list"),
        ({"version": "1.0", "name": "X"}, "is missing required key(s): template"),
        (exported(version="2.0"), "has unsupported version '2.0'; expected \"1.0\""),
        (exported(name=""), "'name' must be a non-empty string, got ''"),
        (exported(template=3), "'template' must be a string"),
        (exported(jsonSchema=[1]), "'jsonSchema' must be a JSON object"),
        (exported(template='{"type": {{ x }'), "template does not compile"),
        (
            exported(encodedWidget=None),
            "has no preview data to check the template with: export it from "
            "widgets.chatkit.studio (encodedWidget.defaultState) or add a top-level "
            '"defaultState" object',
        ),
        (exported(encodedWidget="!!!"), "'encodedWidget' is not base64 JSON"),
        (exported(defaultState=[1]), "preview data must be a JSON object, got list"),
        (
            exported(defaultState={"title": "only"}),
            "does not render with its preview data: data is missing 'due', 'tags'",
        ),
        (
            exported(template='{"type":"Text","value":{{ title | tojson }}}'),
            "does not render with its preview data: template did not render a widget root "
            "(type Card, ListView or Basic): type: Input should be 'Card', 'ListView' or 'Basic'",
        ),
        (
            exported(template='{"type":"Card",{{ title | tojson }}}'),
            "does not render with its preview data: template rendered invalid JSON",
        ),
    ],
)
def test_load_time_errors_name_the_file(tmp_path: Path, content: Any, problem: str) -> None:
    path = write(tmp_path, "bad.widget", content)
    with pytest.raises(WidgetFileError) as excinfo:
        WidgetRegistry.from_directory(tmp_path)
    assert excinfo.value.path == path
    assert str(excinfo.value).startswith(f"{path}: {problem}")


def test_preview_can_be_optional(tmp_path: Path) -> None:
    write(tmp_path, "task.widget", exported(encodedWidget=None))
    registry = WidgetRegistry.from_directory(tmp_path, require_preview=False)
    assert registry["Task"].preview_data is None
    assert registry.build("Task", PREVIEW).type == "Card"


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    first = write(tmp_path, "a.widget", exported())
    second = write(tmp_path, "b.widget", exported())
    with pytest.raises(WidgetFileError) as excinfo:
        WidgetRegistry.from_directory(tmp_path)
    assert str(excinfo.value) == f"{second}: widget name 'Task' is already used by {first}"


def test_load_widget_file_alone(tmp_path: Path) -> None:
    definition = load_widget_file(write(tmp_path, "t.widget", exported()))
    assert definition.name == "Task"
    assert definition.json_schema["type"] == "object"
