"""Load a directory of `.widget` files once, check every template, build widgets by name.

A `.widget` file (exported from widgets.chatkit.studio) is a JSON object with `version`
("1.0"), `name`, a Jinja2 `template` that renders widget JSON, an optional `jsonSchema`, and,
in exports, `outputJsonPreview` and `encodedWidget` (base64url JSON whose `defaultState` is the
preview data the template was designed with). Hand-written files may carry preview data as a
top-level `defaultState` object instead. Upstream's `WidgetTemplate.from_file` resolves
relative paths against the calling module (chatkit-contract.md 4.2), so this registry only
accepts absolute directories.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatkit.widgets import DynamicWidgetRoot, WidgetTemplate
from jinja2 import Environment, TemplateError, UndefinedError, meta
from pydantic import BaseModel, ValidationError

WIDGET_SUFFIX = ".widget"

_PARSER = Environment()  # only parses templates to list the variables they read


class WidgetFileError(ValueError):
    """A `.widget` file cannot be loaded; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class WidgetBuildError(ValueError):
    """A widget template failed to render with the data it was given."""

    def __init__(self, name: str, path: Path | None, problem: str) -> None:
        where = f" ({path})" if path is not None else ""
        super().__init__(f"widget {name!r}{where}: {problem}")
        self.name = name
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class WidgetDefinition:
    """One loaded `.widget` file."""

    name: str
    path: Path
    template: WidgetTemplate
    json_schema: dict[str, Any]
    preview_data: dict[str, Any] | None
    variables: frozenset[str]
    """Top-level names the template reads from its data."""


class WidgetRegistry(Mapping[str, WidgetDefinition]):
    """The widgets of a directory, by `name`, each checked against its own preview data.

    `WidgetRegistry.from_directory(Path(__file__).parent / "widgets")` loads every `.widget`
    file once (sorted by path; `recursive=True` includes subdirectories), renders each template
    with its preview data and validates the result as a widget root, raising `WidgetFileError`
    on the first problem. `build(name, data)` then renders widgets at request time.
    """

    def __init__(self, definitions: Mapping[str, WidgetDefinition]) -> None:
        self._definitions = dict(definitions)

    @classmethod
    def from_directory(
        cls,
        directory: str | Path,
        *,
        recursive: bool = False,
        require_preview: bool = True,
    ) -> WidgetRegistry:
        """Load and check every `.widget` file in `directory` (an absolute path).

        With `require_preview=False` a file without preview data is only parsed, not rendered.
        """
        root = Path(directory)
        if not root.is_absolute():
            raise ValueError(
                f"widget directory {str(directory)!r} must be an absolute path, for example "
                'Path(__file__).parent / "widgets"'
            )
        if not root.is_dir():
            raise ValueError(f"widget directory {str(root)!r} does not exist or is not a directory")
        pattern = f"**/*{WIDGET_SUFFIX}" if recursive else f"*{WIDGET_SUFFIX}"
        paths = sorted(p for p in root.glob(pattern) if p.is_file())
        if not paths:
            raise ValueError(f"widget directory {str(root)!r} contains no {WIDGET_SUFFIX} files")
        definitions: dict[str, WidgetDefinition] = {}
        for path in paths:
            definition = load_widget_file(path, require_preview=require_preview)
            other = definitions.get(definition.name)
            if other is not None:
                raise WidgetFileError(
                    path, f"widget name {definition.name!r} is already used by {other.path}"
                )
            definitions[definition.name] = definition
        return cls(definitions)

    def __getitem__(self, name: str) -> WidgetDefinition:
        try:
            return self._definitions[name]
        except KeyError:
            known = ", ".join(repr(n) for n in sorted(self._definitions)) or "none"
            raise KeyError(f"no widget named {name!r}; known widgets: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._definitions))

    def __len__(self) -> int:
        return len(self._definitions)

    def build(
        self, name: str, data: Mapping[str, Any] | BaseModel | None = None
    ) -> DynamicWidgetRoot:
        """Render widget `name` with `data`; WidgetBuildError names the widget and the problem.

        Pydantic models are dumped in JSON mode, so dates and enums render as JSON values.
        """
        definition = self[name]
        return render_template(
            definition.template, definition.name, definition.path, data, definition.variables
        )

    def preview(self, name: str) -> DynamicWidgetRoot:
        """Render widget `name` with its own preview data."""
        definition = self[name]
        return render_template(
            definition.template,
            definition.name,
            definition.path,
            definition.preview_data,
            definition.variables,
        )


def load_widget_file(path: Path, *, require_preview: bool = True) -> WidgetDefinition:
    """Parse one `.widget` file and render it with its preview data; WidgetFileError if bad."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise WidgetFileError(path, f"cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise WidgetFileError(path, f"is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise WidgetFileError(path, f"must contain a JSON object, found {type(raw).__name__}")
    missing = [key for key in ("version", "name", "template") if key not in raw]
    if missing:
        raise WidgetFileError(path, f"is missing required key(s): {', '.join(missing)}")
    if raw["version"] != "1.0":
        raise WidgetFileError(path, f'has unsupported version {raw["version"]!r}; expected "1.0"')
    name = raw["name"]
    if not isinstance(name, str) or not name:
        raise WidgetFileError(path, f"'name' must be a non-empty string, got {name!r}")
    if not isinstance(raw["template"], str):
        raise WidgetFileError(path, "'template' must be a string")
    schema = raw.get("jsonSchema") or {}
    if not isinstance(schema, dict):
        raise WidgetFileError(path, "'jsonSchema' must be a JSON object")
    try:
        variables = frozenset(meta.find_undeclared_variables(_PARSER.parse(raw["template"])))
        template = WidgetTemplate(raw)
    except TemplateError as exc:
        raise WidgetFileError(path, f"template does not compile: {exc}") from exc
    preview = _preview_data(path, raw)
    if preview is None:
        if require_preview:
            raise WidgetFileError(
                path,
                "has no preview data to check the template with: export it from "
                "widgets.chatkit.studio (encodedWidget.defaultState) or add a top-level "
                '"defaultState" object',
            )
    else:
        try:
            render_template(template, name, path, preview, variables)
        except WidgetBuildError as exc:
            problem = f"does not render with its preview data: {exc.problem}"
            raise WidgetFileError(path, problem) from exc
    return WidgetDefinition(
        name=name,
        path=path,
        template=template,
        json_schema=schema,
        preview_data=preview,
        variables=variables,
    )


def render_template(
    template: WidgetTemplate,
    name: str,
    path: Path | None,
    data: Mapping[str, Any] | BaseModel | None,
    variables: frozenset[str] = frozenset(),
) -> DynamicWidgetRoot:
    """Render a template to a widget root, turning every failure into a WidgetBuildError."""
    if data is None:
        values: dict[str, Any] = {}
    elif isinstance(data, BaseModel):
        values = data.model_dump(mode="json")
    else:
        values = dict(data)
    try:
        rendered = template.template.render(**values)
    except Exception as exc:
        raise WidgetBuildError(name, path, _render_problem(exc, variables - values.keys())) from exc
    try:
        parsed = json.loads(rendered)
    except json.JSONDecodeError as exc:
        raise WidgetBuildError(
            name, path, f"template rendered invalid JSON ({exc}): {rendered[:200]!r}"
        ) from exc
    try:
        return DynamicWidgetRoot.model_validate(parsed)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(p) for p in first["loc"]) or "root"
        raise WidgetBuildError(
            name,
            path,
            "template did not render a widget root (type Card, ListView or Basic): "
            f"{location}: {first['msg']}",
        ) from exc


def _render_problem(exc: Exception, missing: Iterable[str]) -> str:
    # With StrictUndefined a missing value raises UndefinedError, or a TypeError from `tojson`.
    if isinstance(exc, UndefinedError) or (isinstance(exc, TypeError) and "Undefined" in str(exc)):
        names = sorted(missing)
        if names:
            return f"data is missing {', '.join(repr(n) for n in names)}"
        return f"data is missing a value the template reads ({exc})"
    if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
        return f"data is not JSON-serializable: {exc}"
    return f"template error: {type(exc).__name__}: {exc}"


def _preview_data(path: Path, raw: dict[str, Any]) -> dict[str, Any] | None:
    state = raw.get("defaultState")
    encoded = raw.get("encodedWidget")
    if state is None and isinstance(encoded, str) and encoded:
        try:
            padded = encoded + "=" * (-len(encoded) % 4)
            decoded = json.loads(
                base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
            )
        except (binascii.Error, ValueError) as exc:
            raise WidgetFileError(path, f"'encodedWidget' is not base64 JSON: {exc}") from exc
        if isinstance(decoded, dict):
            state = decoded.get("defaultState")
    if state is None:
        return None
    if not isinstance(state, dict):
        raise WidgetFileError(
            path, f"preview data must be a JSON object, got {type(state).__name__}"
        )
    return state
