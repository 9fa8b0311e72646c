"""Render a `.widget` template exactly as upstream's `WidgetTemplate.build` does.

Upstream renders with `data.model_dump()` for pydantic models (Python mode) or the mapping as
given, `json.loads` the text and validates a `DynamicWidgetRoot`; this module does the same with
the same compiled template, so a widget that upstream builds comes out identical. Two additions:
data that `tojson` cannot serialize (dates, UUIDs, decimals) is retried in its JSON form, where
upstream raises; and a failure is explained: a value the template reads but the data lacks is
named by the template expression, its line, and where in the data the lookup failed.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from chatkit.widgets import DynamicWidgetRoot, WidgetTemplate
from jinja2 import Environment, StrictUndefined, TemplateError, nodes
from jinja2.runtime import Undefined
from jinja2.utils import missing
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python


class RenderError(Exception):
    """Rendering failed; `problem` says why, naming the data as `what` ("data", "preview data")."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def render(
    template: WidgetTemplate,
    source: str,
    data: Mapping[str, Any] | BaseModel | None,
    variables: frozenset[str],
    what: str = "data",
) -> DynamicWidgetRoot:
    """Build a widget root from `template` (compiled from `source`) with `data`."""
    if data is None:
        values: dict[str, Any] = {}
    elif isinstance(data, BaseModel):
        values = data.model_dump()
    else:
        values = dict(data)
    try:
        rendered = _render_text(template, values)
    except Exception as exc:
        if not _not_serializable(exc):
            raise RenderError(_explain(exc, source, values, variables, what)) from exc
        # Upstream stops here; the JSON form of the same data renders dates and the like.
        json_values = (
            data.model_dump(mode="json") if isinstance(data, BaseModel) else _jsonable(values)
        )
        try:
            rendered = _render_text(template, json_values)
        except Exception as retry_exc:
            problem = _explain(retry_exc, source, json_values, variables, what)
            raise RenderError(problem) from retry_exc
    try:
        parsed = json.loads(rendered)
    except json.JSONDecodeError as exc:
        raise RenderError(f"template rendered invalid JSON ({exc}): {rendered[:200]!r}") from exc
    try:
        return DynamicWidgetRoot.model_validate(parsed)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(p) for p in first["loc"]) or "root"
        raise RenderError(
            "template did not render a widget root (type Card, ListView or Basic): "
            f"{location}: {first['msg']}"
        ) from exc


def _render_text(template: WidgetTemplate, values: Mapping[str, Any]) -> str:
    text: str = template.template.render(**values)
    return text


def _not_serializable(exc: Exception) -> bool:
    return (
        isinstance(exc, TypeError)
        and "JSON serializable" in str(exc)
        and "Undefined" not in str(exc)
    )


def _jsonable(values: dict[str, Any]) -> Any:
    try:
        return to_jsonable_python(values)
    except Exception:  # not convertible: the retry reports the failure
        return values


# --- explaining failures ----------------------------------------------------------------------

_FAILED: contextvars.ContextVar[list[Undefined] | None] = contextvars.ContextVar(
    "_chatkit_kit_failed_undefined", default=None
)


class _RecordingUndefined(StrictUndefined):
    """StrictUndefined that remembers which undefined value failed (for explanations only)."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        failed = _FAILED.get()
        if failed is not None:
            failed.append(self)
        return super()._undefined_message


def _dumps_failing_on_undefined(value: Any, **kwargs: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, Undefined):
            obj._fail_with_undefined_error()
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    return json.dumps(value, default=default, **kwargs)


def _diagnostic_environment() -> Environment:
    env = Environment(undefined=_RecordingUndefined)
    env.policies["json.dumps_function"] = _dumps_failing_on_undefined
    return env


_DIAGNOSTIC_ENV = _diagnostic_environment()


@dataclass(frozen=True)
class _Missing:
    """One value the template read but the data did not have."""

    key: Any
    """The attribute, key or index not found; for a top-level variable, its name."""
    container: Any
    """The object the lookup was made on; `missing` for a top-level variable."""
    line: int | None
    expression: str | None


def _explain(
    exc: Exception, source: str, values: dict[str, Any], variables: frozenset[str], what: str
) -> str:
    if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
        if "Undefined" not in str(exc):
            return f"{what} is not JSON-serializable: {exc}"
    elif not isinstance(exc, TemplateError):
        return f"template error: {type(exc).__name__}: {exc}"
    found = _find_missing(source, values)
    if found is None:
        if isinstance(exc, TemplateError):
            return f"template error: {type(exc).__name__}: {exc}"
        return f"{what} is missing a value the template reads ({exc})"
    if found.container is missing:
        names = sorted(variables - values.keys()) or [str(found.key)]
        listed = ", ".join(repr(n) for n in names)
        keys = ", ".join(repr(k) for k in list(values)[:20])
        return f"{what} is missing {listed}" + (f" (it has {keys})" if keys else "")
    read = f"the template reads {found.expression}" if found.expression else "the template reads it"
    line = f" (line {found.line})" if found.line is not None else ""
    if not isinstance(found.container, Mapping | list | tuple):
        # Scalars have no identity worth searching for (every None is the same object).
        kind = "null" if found.container is None else type(found.container).__name__
        return f"{what} has a {kind} value where {read}{line}, which has no {found.key!r}"
    where = _path_to(values, found.container)
    place = f"{what} at {where}" if where else f"a value in the {what}"
    return f"{place} has no {found.key!r}: {read}{line}{_keys_note(found.container)}"


def _keys_note(container: Any) -> str:
    if isinstance(container, Mapping):
        keys = ", ".join(repr(k) for k in list(container)[:20])
        return f"; it has {keys}" if keys else "; it is empty"
    return f"; it has {len(container)} item(s)"


def _find_missing(source: str, values: dict[str, Any]) -> _Missing | None:
    """Render `source` again with a recording Undefined to see which lookup failed."""
    failed: list[Undefined] = []
    token = _FAILED.set(failed)
    try:
        template = _DIAGNOSTIC_ENV.from_string(source)
        template.render(**values)
    except Exception as exc:  # any failure: look at what was recorded
        traceback = exc.__traceback__
    else:
        return None
    finally:
        _FAILED.reset(token)
    if not failed:
        return None
    undefined = failed[-1]
    key = undefined._undefined_name
    container = undefined._undefined_obj
    line = _template_line(traceback)
    expression = _expression(source, line, key, top_level=container is missing)
    return _Missing(key=key, container=container, line=line, expression=expression)


def _template_line(traceback: TracebackType | None) -> int | None:
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _expression(source: str, line: int | None, key: Any, *, top_level: bool) -> str | None:
    """The template expression on `line` that looks up `key`, as written (e.g. `item.name`)."""
    try:
        tree = _DIAGNOSTIC_ENV.parse(source)
    except TemplateError:
        return None
    candidates: list[nodes.Node] = []
    for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        if line is not None and node.lineno != line:
            continue
        if top_level and isinstance(node, nodes.Name):
            if node.name == key and node.ctx == "load":
                candidates.append(node)
        elif isinstance(node, nodes.Getattr) and node.attr == key:
            candidates.append(node)
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and node.arg.value == key
        ):
            candidates.append(node)
    if not candidates:
        return None
    return _node_text(candidates[0])


def _node_text(node: nodes.Node) -> str:
    if isinstance(node, nodes.Name):
        return str(node.name)
    if isinstance(node, nodes.Getattr):
        return f"{_node_text(node.node)}.{node.attr}"
    if isinstance(node, nodes.Getitem):
        index = repr(node.arg.value) if isinstance(node.arg, nodes.Const) else "..."
        return f"{_node_text(node.node)}[{index}]"
    return "(...)"


def _path_to(values: dict[str, Any], target: Any) -> str | None:
    """Where `target` sits in `values` (by identity), e.g. `lines[0]`; "" for `values` itself."""
    if target is values:
        return ""
    for path, value in _walk(values, "", depth=0):
        if value is target:
            return path
    return None


def _walk(value: Any, path: str, depth: int) -> Iterator[tuple[str, Any]]:
    if depth > 32:
        return
    if isinstance(value, Mapping):
        for key, child in value.items():
            child_path = f"{path}.{key}" if path and isinstance(key, str) else f"{path}[{key!r}]"
            if not path and isinstance(key, str):
                child_path = key
            yield child_path, child
            yield from _walk(child, child_path, depth + 1)
    elif isinstance(value, list | tuple):
        for index, child in enumerate(value):
            child_path = f"{path}[{index}]"
            yield child_path, child
            yield from _walk(child, child_path, depth + 1)
