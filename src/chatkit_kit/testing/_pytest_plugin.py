"""pytest plugin, registered by the `chatkit-kit` distribution (entry point `pytest11`).

Upstream's `chatkit.types` module warns (DeprecationWarning) as it defines its named widget
classes, so in a project with `filterwarnings = error` any test module importing chatkit fails
at collection. This plugin imports `chatkit.types` once, before collection, with that one
warning silenced; nothing else changes. Disable it with `-p no:chatkit_kit`.
"""

from __future__ import annotations

from ._quiet import import_chatkit_quietly

import_chatkit_quietly()
