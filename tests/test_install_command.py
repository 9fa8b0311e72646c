"""`install_command`: a missing-extra message's pip command works where chatkit-kit came from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from chatkit_kit import _install
from chatkit_kit._install import install_command


class _Distribution:
    def __init__(self, direct_url: str | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return self.direct_url


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str | None]]:
    """Set what pip recorded for chatkit-kit (`direct_url.json`, None when it recorded none)."""
    value: list[str | None] = [None]
    monkeypatch.setattr(metadata, "distribution", lambda name: _Distribution(value[0]))
    _install._origin.cache_clear()
    yield value
    _install._origin.cache_clear()


def _origin(recorded: list[str | None], direct: dict[str, object]) -> None:
    recorded[0] = json.dumps(direct)
    _install._origin.cache_clear()


def test_this_installation_gets_a_command_for_its_clone() -> None:
    command = install_command("mysql")
    root = Path(__file__).resolve().parent.parent
    assert command in (f'pip install -e "{root}[mysql]"', f'pip install "{root}[mysql]"'), command


def test_every_origin_gets_one_command(recorded: list[str | None], tmp_path: Path) -> None:
    assert install_command("s3") == 'pip install "chatkit-kit[s3]"'  # from an index

    _origin(recorded, {"url": tmp_path.as_uri(), "dir_info": {"editable": True}})
    assert install_command("s3") == f'pip install -e "{tmp_path}[s3]"'
    _origin(recorded, {"url": tmp_path.as_uri(), "dir_info": {}})
    assert install_command("s3") == f'pip install "{tmp_path}[s3]"'

    wheel = tmp_path / "chatkit_kit-1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    _origin(recorded, {"url": wheel.as_uri(), "archive_info": {}})
    assert install_command("s3") == f'pip install "{wheel}[s3]"'

    _origin(
        recorded,
        {
            "url": "https://example.com/chatkit-kit.git",
            "vcs_info": {"vcs": "git", "commit_id": "ab"},
        },
    )
    assert install_command("s3") == (
        'pip install "chatkit-kit[s3] @ git+https://example.com/chatkit-kit.git@ab"'
    )


def test_a_vanished_or_unreadable_origin_gets_the_clone_command(
    recorded: list[str | None], tmp_path: Path
) -> None:
    _origin(recorded, {"url": (tmp_path / "gone").as_uri(), "dir_info": {}})
    assert install_command("s3") == 'python3 -m pip install ".[s3]" (in a clone of chatkit-kit)'
    recorded[0] = "not json"
    _install._origin.cache_clear()
    assert install_command("s3").startswith('python3 -m pip install ".[s3]"')
