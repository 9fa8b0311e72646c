"""WidgetRegistry: load-time checks with preview data, and building widgets by name."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from chatkit_kit.errors import ChatKitKitError
from chatkit_kit.widgets import (
    WidgetBuildError,
    WidgetError,
    WidgetFileError,
    WidgetPreviewWarning,
    WidgetRegistry,
    load_widget_file,
)
from chatkit_kit.widgets._widget_file import MAX_WIDGET_FILE_BYTES

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
    assert str(excinfo.value) == (
        f"widget 'Task' ({path}): data is missing 'due' (it has 'title', 'tags')"
    )
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
    with pytest.raises(WidgetBuildError) as excinfo:
        registry.build("User", {"user": {"id": 7}})
    assert excinfo.value.problem == (
        "data at user has no 'name': the template reads user.name (line 1); it has 'id'"
    )


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
        (exported(template=3), "'template' must be a string"),  # type: ignore[arg-type]
        (exported(jsonSchema=[1]), "'jsonSchema' must be a JSON object"),
        (exported(template='{"type": {{ x }'), "template does not compile"),
        (
            exported(encodedWidget=None),
            "has no preview data to check the template with (the file has no defaultState "
            "and no encodedWidget); export it from widgets.chatkit.studio or add a top-level "
            '"defaultState" object with sample data, or load the file with preview="warn"',
        ),
        (
            exported(encodedWidget="!!!"),
            "has no preview data to check the template with ('encodedWidget' is not base64 text)",
        ),
        (
            exported(defaultState=[1]),
            "has no preview data to check the template with ('defaultState' must be a JSON "
            "object, got list)",
        ),
        (
            exported(defaultState={"title": "only"}),
            "does not render with its preview data (defaultState): preview data is missing "
            "'due', 'tags' (it has 'title'); fix the template or its preview data, or load the "
            'file with preview="warn"',
        ),
        (
            exported(template='{"type":"Text","value":{{ title | tojson }}}'),
            "does not render with its preview data (encodedWidget.defaultState): template did "
            "not render a widget root (type Card, ListView or Basic): type: Input should be "
            "'Card', 'ListView' or 'Basic'",
        ),
        (
            exported(template='{"type":"Card",{{ title | tojson }}}'),
            "does not render with its preview data (encodedWidget.defaultState): template "
            "rendered invalid JSON",
        ),
    ],
)
def test_load_time_errors_name_the_file(tmp_path: Path, content: Any, problem: str) -> None:
    path = write(tmp_path, "bad.widget", content)
    with pytest.raises(WidgetFileError) as excinfo:
        WidgetRegistry.from_directory(tmp_path)
    assert excinfo.value.path == path
    assert str(excinfo.value).startswith(f"{path}: {problem}")


def test_without_preview_data_files_load_with_warn_or_ignore(tmp_path: Path) -> None:
    path = write(tmp_path, "task.widget", exported(encodedWidget=None))
    with pytest.warns(WidgetPreviewWarning, match="has no preview data") as record:
        registry = WidgetRegistry.from_directory(tmp_path, preview="warn")
    assert str(record[0].message).startswith(f"{path}: has no preview data")
    assert record[0].filename == __file__  # reported at the caller's line
    assert registry["Task"].preview_data is None
    assert registry["Task"].preview_problem is not None
    assert registry.build("Task", PREVIEW).type == "Card"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry = WidgetRegistry.from_directory(tmp_path, preview="ignore")
    assert registry["Task"].preview_problem is None


def test_require_preview_still_works_and_is_deprecated(tmp_path: Path) -> None:
    write(tmp_path, "task.widget", exported(encodedWidget=None))
    with pytest.warns(DeprecationWarning, match="require_preview is deprecated: use preview="):
        registry = WidgetRegistry.from_directory(tmp_path, require_preview=False)
    assert registry["Task"].preview_data is None
    with (
        pytest.warns(DeprecationWarning, match="require_preview is deprecated"),
        pytest.raises(WidgetFileError, match="has no preview data"),
    ):
        WidgetRegistry.from_directory(tmp_path, require_preview=True)
    # require_preview=False never let a stale preview through; it still does not
    write(tmp_path, "task.widget", exported(defaultState={"title": "only"}))
    with (
        pytest.warns(DeprecationWarning, match="require_preview is deprecated"),
        pytest.raises(WidgetFileError, match="preview data is missing 'due', 'tags'"),
    ):
        load_widget_file(tmp_path / "task.widget", require_preview=False)
    with pytest.raises(TypeError, match="not both"):
        load_widget_file(tmp_path / "task.widget", preview="warn", require_preview=False)


def test_bad_options_are_named(tmp_path: Path) -> None:
    write(tmp_path, "task.widget", exported())
    with pytest.raises(ValueError, match="preview must be one of 'check', 'warn', 'ignore'"):
        WidgetRegistry.from_directory(tmp_path, preview="strict")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keys must be one of 'name', 'stem'"):
        WidgetRegistry.from_directory(tmp_path, keys="path")  # type: ignore[arg-type]


def test_duplicate_names_are_rejected_with_the_fix(tmp_path: Path) -> None:
    first = write(tmp_path, "a.widget", exported())
    second = write(tmp_path, "b.widget", exported())
    with pytest.raises(WidgetFileError) as excinfo:
        WidgetRegistry.from_directory(tmp_path)
    assert str(excinfo.value) == (
        f"{second}: widget name 'Task' is already used by {first}; give each file its own "
        '"name" (the widget name in widgets.chatkit.studio, or the file\'s "name" key), or key '
        'the registry by file name with keys="stem"'
    )
    registry = WidgetRegistry.from_directory(tmp_path, keys="stem")
    assert list(registry) == ["a", "b"]
    assert registry["a"].name == registry["b"].name == "Task"
    assert registry["b"].path == second


def test_stem_keys_in_subdirectories(tmp_path: Path) -> None:
    (tmp_path / "forms").mkdir()
    write(tmp_path / "forms", "task.widget", exported())
    write(tmp_path, "task.widget", exported())
    registry = WidgetRegistry.from_directory(tmp_path, recursive=True, keys="stem")
    assert list(registry) == ["forms/task", "task"]


def test_oversized_files_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "big.widget", exported(padding="x" * (MAX_WIDGET_FILE_BYTES + 1)))
    with pytest.raises(WidgetFileError, match=f"is larger than {MAX_WIDGET_FILE_BYTES} bytes"):
        load_widget_file(path)


def test_load_widget_file_alone(tmp_path: Path) -> None:
    definition = load_widget_file(write(tmp_path, "t.widget", exported()))
    assert definition.name == "Task"
    assert definition.json_schema["type"] == "object"


def test_widget_errors_join_the_project_error_tree() -> None:
    assert issubclass(WidgetFileError, WidgetError)
    assert issubclass(WidgetBuildError, WidgetError)
    assert issubclass(WidgetError, ChatKitKitError)
    assert issubclass(WidgetError, ValueError)  # as before


def test_missing_value_messages_for_lists_and_nulls(tmp_path: Path) -> None:
    template = (
        '{"type":"Card","children":[{"type":"Text","value":{{ tags[2] | tojson }}},'
        '{"type":"Text","value":{{ user.profile.name | tojson }}}]}'
    )
    write(tmp_path, "t.widget", exported(template=template, defaultState={"tags": [], "user": {}}))
    definition = load_widget_file(tmp_path / "t.widget", preview="ignore")
    with pytest.raises(WidgetBuildError) as excinfo:
        definition.build({"tags": ["a", "b"], "user": {"profile": {"name": "n"}}})
    assert excinfo.value.problem == (
        "data at tags has no 2: the template reads tags[2] (line 1); it has 2 item(s)"
    )
    with pytest.raises(WidgetBuildError) as excinfo:
        definition.build({"tags": ["a", "b", "c"], "user": {"profile": None}})
    assert excinfo.value.problem == (
        "data has a null value where the template reads user.profile.name (line 1), which has "
        "no 'name'"
    )
