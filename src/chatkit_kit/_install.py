"""The one pip command that adds an extra to this chatkit-kit installation.

chatkit-kit is not on a package index yet: it is installed from a clone (`pip install .`,
`pip install -e .`) or from a built wheel. pip records where in the distribution's
`direct_url.json` (PEP 610), so a message naming a missing extra can give a command that works
here: `pip install "/path/to/clone[mysql]"`, `pip install -e "/path/to/clone[mysql]"` or
`pip install "/path/to/chatkit_kit-1.0-py3-none-any.whl[mysql]"`. An installation from an index
(no `direct_url.json`) gets `pip install "chatkit-kit[mysql]"`.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import metadata
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

DISTRIBUTION = "chatkit-kit"
CLONE_COMMAND = 'python3 -m pip install ".[{extra}]"'
"""The form the README and the docs give: run in a clone of the repository."""


@functools.cache
def _origin() -> tuple[str, bool] | None:
    """(requirement to install from, editable) as pip recorded it, or None for an index."""
    try:
        recorded = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return ("", False)  # a source tree on sys.path, not installed: the clone form
    if not recorded:
        return None
    try:
        direct = json.loads(recorded)
        url = str(direct["url"])
    except (ValueError, KeyError, TypeError):
        return ("", False)
    if "vcs_info" in direct:
        vcs = direct["vcs_info"]
        commit = vcs.get("commit_id") or vcs.get("requested_revision")
        return (f"{vcs.get('vcs', 'git')}+{url}" + (f"@{commit}" if commit else ""), False)
    parts = urlsplit(url)
    if parts.scheme != "file":
        return (url, False)  # an archive URL: pip installs it again with the extra
    path = url2pathname(unquote(parts.path))
    if not os.path.exists(path):
        return ("", False)  # the clone or the wheel is gone: the clone form
    editable = bool(direct.get("dir_info", {}).get("editable"))
    return (os.path.normpath(path), editable)


def install_command(extra: str) -> str:
    """The pip command that installs chatkit-kit's `extra` where chatkit-kit came from."""
    origin = _origin()
    if origin is None:
        return f'pip install "{DISTRIBUTION}[{extra}]"'
    where, editable = origin
    if not where:
        return CLONE_COMMAND.format(extra=extra) + " (in a clone of chatkit-kit)"
    if "://" in where:
        return f'pip install "{DISTRIBUTION}[{extra}] @ {where}"'
    return f'pip install {"-e " if editable else ""}"{where}[{extra}]"'
