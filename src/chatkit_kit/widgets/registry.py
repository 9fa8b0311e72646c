"""Load a directory of `.widget` files once, check every template, build widgets by name.

A `.widget` file (exported from widgets.chatkit.studio) is a JSON object with `version`
("1.0"), `name`, a Jinja2 `template` that renders widget JSON and an optional `jsonSchema`;
exports add `outputJsonPreview` and `encodedWidget` (base64 of a JSON object whose
`defaultState` is the preview data, or of the template text). Every file upstream's
`WidgetTemplate` loads, loads here, and builds to the same widget. Preview
data, when the file has it, checks the template at load time (`preview=`). Upstream's
`WidgetTemplate.from_file` resolves relative paths against the calling module, so this
registry only accepts absolute directories.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeAlias

from chatkit.widgets import DynamicWidgetRoot, WidgetTemplate
from jinja2 import Environment, TemplateError, meta
from pydantic import BaseModel

from ..errors import ChatKitKitError
from ._render import RenderError, render
from ._widget_file import MAX_WIDGET_FILE_BYTES, find_preview

WIDGET_SUFFIX = ".widget"

PreviewMode: TypeAlias = Literal["check", "warn", "ignore"]
"""What loading does with preview data: see `load_widget_file`."""

RegistryKeys: TypeAlias = Literal["name", "stem"]
"""How a registry keys its widgets: by each file's `name`, or by file name without `.widget`."""

_PREVIEW_MODES = ("check", "warn", "ignore")
_KEYS = ("name", "stem")
_PARSER = Environment()  # only parses templates to list the variables they read


class WidgetError(ChatKitKitError, ValueError):
    """A `.widget` file or a widget build failed (`WidgetFileError`, `WidgetBuildError`)."""


class WidgetFileError(WidgetError):
    """A `.widget` file cannot be loaded; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class WidgetPreviewWarning(UserWarning):
    """A `.widget` file loaded with `preview="warn"` has missing or stale preview data.

    Under `filterwarnings = error` (pytest) or `python -W error`, this warning is raised, so
    tests stay as strict as `preview="check"`.
    """


class WidgetBuildError(WidgetError):
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
    """The file's `name` (widgets.chatkit.studio's widget name)."""
    path: Path
    template: WidgetTemplate
    """Upstream's template object for this file."""
    json_schema: dict[str, Any]
    preview_data: dict[str, Any] | None
    variables: frozenset[str]
    """Top-level names the template reads from its data."""
    source: str = ""
    """The Jinja2 template text."""
    preview_problem: str | None = None
    """Why the preview data is missing or does not render (None when it rendered, or when
    loaded with `preview="ignore"`)."""

    def build(self, data: Mapping[str, Any] | BaseModel | None = None) -> DynamicWidgetRoot:
        """Render this widget with `data`, as upstream's `WidgetTemplate.build` does.

        Pydantic models are dumped like upstream (`model_dump()`); if a value is not JSON
        serializable for `tojson` (dates, UUIDs, decimals), the JSON-mode dump is used instead.
        Failures raise `WidgetBuildError` naming the widget, the template expression and the
        missing key.
        """
        try:
            return render(self.template, self.source, data, self.variables)
        except RenderError as exc:
            raise WidgetBuildError(self.name, self.path, exc.problem) from exc

    def preview(self) -> DynamicWidgetRoot:
        """Render this widget with its own preview data."""
        try:
            return render(self.template, self.source, self.preview_data, self.variables)
        except RenderError as exc:
            raise WidgetBuildError(self.name, self.path, exc.problem) from exc


class WidgetRegistry(Mapping[str, WidgetDefinition]):
    """The widgets of a directory, by file `name` (or file stem), each checked at load time.

    `WidgetRegistry.from_directory(Path(__file__).parent / "widgets")` loads every `.widget`
    file once (sorted by path; `recursive=True` includes subdirectories), renders each template
    with its preview data and validates the result as a widget root, raising `WidgetFileError`
    on the first problem (see `preview=` for the other modes). `build(key, data)` then renders
    widgets at request time.
    """

    def __init__(self, definitions: Mapping[str, WidgetDefinition]) -> None:
        self._definitions = dict(definitions)

    @classmethod
    def from_directory(
        cls,
        directory: str | Path,
        *,
        recursive: bool = False,
        preview: PreviewMode = "check",
        keys: RegistryKeys = "name",
        require_preview: bool | None = None,
    ) -> WidgetRegistry:
        """Load and check every `.widget` file in `directory` (an absolute path).

        `preview` is applied to every file as in `load_widget_file`. `keys="name"` keys widgets
        by each file's `name` (two files with one name are an error that says how to fix it);
        `keys="stem"` by the file name without `.widget`, relative to `directory` with `/`
        separators when `recursive=True` (e.g. `"forms/address"`).
        `require_preview` is deprecated (see `load_widget_file`).
        """
        if keys not in _KEYS:
            raise ValueError(f"keys must be one of {', '.join(map(repr, _KEYS))}, got {keys!r}")
        allow_missing = _deprecated_require_preview(require_preview, preview)
        _check_mode(preview)
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
            definition = _load(path, preview, allow_missing)
            if keys == "stem":
                key = path.relative_to(root).with_suffix("").as_posix()
            else:
                key = definition.name
            other = definitions.get(key)
            if other is not None:
                raise WidgetFileError(
                    path,
                    f"widget name {key!r} is already used by {other.path}; give each file its "
                    'own "name" (the widget name in widgets.chatkit.studio, or the file\'s '
                    '"name" key), or key the registry by file name with keys="stem"',
                )
            definitions[key] = definition
        return cls(definitions)

    def __getitem__(self, key: str) -> WidgetDefinition:
        try:
            return self._definitions[key]
        except KeyError:
            known = ", ".join(repr(n) for n in sorted(self._definitions)) or "none"
            raise KeyError(f"no widget named {key!r}; known widgets: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._definitions))

    def __len__(self) -> int:
        return len(self._definitions)

    def build(
        self, name: str, data: Mapping[str, Any] | BaseModel | None = None
    ) -> DynamicWidgetRoot:
        """Render the widget keyed `name` with `data` (see `WidgetDefinition.build`)."""
        return self[name].build(data)

    def preview(self, name: str) -> DynamicWidgetRoot:
        """Render the widget keyed `name` with its own preview data."""
        return self[name].preview()


def load_widget_file(
    path: str | Path, *, preview: PreviewMode = "check", require_preview: bool | None = None
) -> WidgetDefinition:
    """Parse one `.widget` file and check it with its preview data.

    Every shape upstream's `WidgetTemplate` loads is accepted. A file that is not valid JSON,
    lacks `version`/`name`/`template`, or whose template does not compile raises
    `WidgetFileError`. The preview data (top-level `defaultState`, or `encodedWidget`'s) is
    then used according to `preview`:

    - `"check"` (default): render the template with it and validate a widget root;
      `WidgetFileError` if the file has no preview data or it does not render, naming the
      template expression and the preview key that is missing. A template that reads no
      variables is rendered without data and needs no preview data.
    - `"warn"`: the same checks, but problems are `WidgetPreviewWarning`s and the file loads
      (its `preview_problem` says what was wrong).
    - `"ignore"`: preview data is not rendered.

    `require_preview` is deprecated: `True` is `preview="check"`; `False` is `"check"` that lets
    files without preview data pass.
    """
    allow_missing = _deprecated_require_preview(require_preview, preview)
    _check_mode(preview)
    return _load(Path(path), preview, allow_missing)


def _check_mode(preview: str) -> None:
    if preview not in _PREVIEW_MODES:
        modes = ", ".join(repr(m) for m in _PREVIEW_MODES)
        raise ValueError(f"preview must be one of {modes}, got {preview!r}")


def _deprecated_require_preview(require_preview: bool | None, preview: str) -> bool:
    """Whether files without preview data pass the check (the old `require_preview=False`)."""
    if require_preview is None:
        return False
    if preview != "check":
        raise TypeError("pass either preview= or the deprecated require_preview=, not both")
    warnings.warn(
        "require_preview is deprecated: use preview='check' (the default; every file needs "
        "preview data that renders), preview='warn' (load files whose preview data is missing "
        "or stale, with a WidgetPreviewWarning) or preview='ignore'",
        DeprecationWarning,
        stacklevel=3,
    )
    return not require_preview


def _load(path: Path, preview: PreviewMode, allow_missing: bool) -> WidgetDefinition:
    raw = _read(path)
    missing = [key for key in ("version", "name", "template") if key not in raw]
    if missing:
        raise WidgetFileError(path, f"is missing required key(s): {', '.join(missing)}")
    if raw["version"] != "1.0":
        raise WidgetFileError(path, f'has unsupported version {raw["version"]!r}; expected "1.0"')
    name = raw["name"]
    if not isinstance(name, str) or not name:
        raise WidgetFileError(path, f"'name' must be a non-empty string, got {name!r}")
    source = raw["template"]
    if not isinstance(source, str):
        raise WidgetFileError(path, "'template' must be a string")
    schema = raw.get("jsonSchema") or {}
    if not isinstance(schema, dict):
        raise WidgetFileError(path, "'jsonSchema' must be a JSON object")
    try:
        variables = frozenset(meta.find_undeclared_variables(_PARSER.parse(source)))
        template = WidgetTemplate(raw)
    except TemplateError as exc:
        raise WidgetFileError(path, f"template does not compile: {exc}") from exc
    definition = WidgetDefinition(
        name=name,
        path=path,
        template=template,
        json_schema=schema,
        preview_data=None,
        variables=variables,
        source=source,
    )
    found = find_preview(raw)
    if preview == "ignore":
        return replace(definition, preview_data=found.data)
    problem: str | None = None
    fix = ""
    if found.data is None and not variables:
        # A template that reads no data needs no preview data to be checked.
        try:
            render(template, source, None, variables, what="preview data")
        except RenderError as exc:
            problem = f"does not render: {exc.problem}"
            fix = "fix the template"
    elif found.data is None:
        if not allow_missing:
            problem = f"has no preview data to check the template with ({found.source})"
            fix = (
                'export it from widgets.chatkit.studio or add a top-level "defaultState" '
                "object with sample data"
            )
    else:
        try:
            render(template, source, found.data, variables, what="preview data")
        except RenderError as exc:
            problem = f"does not render with its preview data ({found.source}): {exc.problem}"
            fix = "fix the template or its preview data"
    if problem is None:
        return replace(definition, preview_data=found.data)
    if preview == "check":
        raise WidgetFileError(path, f'{problem}; {fix}, or load the file with preview="warn"')
    warnings.warn(WidgetPreviewWarning(f"{path}: {problem}"), stacklevel=3)
    return replace(definition, preview_data=found.data, preview_problem=problem)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_WIDGET_FILE_BYTES + 1)
    except OSError as exc:
        raise WidgetFileError(path, f"cannot be read: {exc}") from exc
    if len(data) > MAX_WIDGET_FILE_BYTES:
        raise WidgetFileError(path, f"is larger than {MAX_WIDGET_FILE_BYTES} bytes")
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WidgetFileError(path, f"cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise WidgetFileError(path, f"is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise WidgetFileError(path, f"must contain a JSON object, found {type(raw).__name__}")
    return raw
