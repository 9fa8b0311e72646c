"""CI runs exactly the README's test command, and the noxfile documents what it searches."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_test_command() -> str:
    development = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Development\n")[1]
    block = re.search(r"```bash\n(.*?)\n```", development, re.DOTALL)
    assert block is not None
    return block.group(1).strip()


def test_ci_runs_the_readme_command() -> None:
    command = readme_test_command()
    assert command == "python3 -m pip install nox && python3 -m nox"
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[-1] == command
    # No interpreter work-around of its own: nox finds the Pythons.
    assert "pyenv" not in "\n".join(lines)


def test_the_searched_places_are_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    for place in ("$(pyenv root)/versions/3.X.*/bin/python3.X", "uv python find 3.X"):
        assert place in readme and place in noxfile
    for directory in re.findall(r'"(/[a-z/]+/bin)"', noxfile.split("SYSTEM_DIRS = ")[1][:200]):
        assert f"`{directory}`" in readme


_PRINT_FOUND = (
    "import noxfile\n"
    "for version in ('3.10', '3.11', '3.12', '3.13'):\n"
    "    print(version, noxfile.find_python(version))\n"
)


def _load_noxfile(
    tmp_path: Path, script: str = _PRINT_FOUND, **env: str
) -> subprocess.CompletedProcess[str]:
    """Load a copy of the noxfile in `tmp_path` (its links go there) with `env` as the whole env,
    and run `script` after it."""
    shutil.copy(ROOT / "noxfile.py", tmp_path / "noxfile.py")
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_refusing_shim_is_passed_over_for_pyenvs_own_build(tmp_path: Path) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    shims = tmp_path / "pyenv" / "shims"
    shims.mkdir(parents=True)
    shim = shims / f"python{version}"
    shim.write_text(f"#!/bin/sh\necho 'pyenv: python{version}: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    build = tmp_path / "pyenv" / "versions" / f"{version}.99" / "bin"
    build.mkdir(parents=True)
    (build / f"python{version}").symlink_to(sys.executable)
    bin_dir = Path(sys.executable).parent
    result = _load_noxfile(
        tmp_path,
        PATH=f"{shims}{os.pathsep}/nonexistent",
        PYENV_ROOT=str(tmp_path / "pyenv"),
        HOME=str(tmp_path),
        UV_PYTHON_INSTALL_DIR=str(tmp_path / "uv"),
    )
    assert result.returncode == 0, result.stderr
    assert f"{version} ('pyenv', " in result.stdout, result.stdout
    assert "nox: Pythons found: " in result.stderr
    link = tmp_path / ".nox" / ".interpreters" / f"python{version}"
    assert link.is_symlink() and Path(os.readlink(link)).parent in {build, bin_dir}
    missing = [v for v in ("3.10", "3.11", "3.12", "3.13") if f"{v} None" in result.stdout]
    if missing:  # the system directories may hold some; the rest are named as skipped
        assert f"skipped Python {', '.join(missing)}" in result.stderr, result.stderr


def test_uv_builds_are_found_and_ci_requires_every_python(tmp_path: Path) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    build = tmp_path / "uv" / f"cpython-{version}.99-linux-x86_64-gnu" / "bin"
    build.mkdir(parents=True)
    (build / f"python{version}").symlink_to(sys.executable)
    env = {
        "PATH": "/nonexistent",
        "PYENV_ROOT": str(tmp_path / "no-pyenv"),
        "HOME": str(tmp_path),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv"),
    }
    result = _load_noxfile(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert f"{version} ('uv', '{build / f'python{version}'}')" in result.stdout, result.stdout
    missing = [v for v in ("3.10", "3.11", "3.12", "3.13") if f"{v} None" in result.stdout]
    in_ci = _load_noxfile(tmp_path, **env, CI="true")
    if missing:
        assert in_ci.returncode == 1
        assert f"CI=true needs every supported Python, and {', '.join(missing)}" in in_ci.stderr
    else:
        assert in_ci.returncode == 0, in_ci.stderr


def test_default_runs_the_fast_tests_on_the_highest_python_and_ci_on_both_ends(
    tmp_path: Path,
) -> None:
    """`nox` on a developer machine: one tests session (the highest Python found), no slow one;
    CI=true: the lowest and the highest, and the slow session."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for version in ("3.10", "3.11", "3.12", "3.13"):
        # Each answers the noxfile's probe as that version (the sessions are only listed here).
        fake = bin_dir / f"python{version}"
        fake.write_text(f"#!/bin/sh\necho '{version} {fake}'\n")
        fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/nonexistent",
        "PYENV_ROOT": str(tmp_path / "no-pyenv"),
        "HOME": str(tmp_path),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv"),
    }
    script = "import noxfile\nprint(' '.join(noxfile.nox.options.sessions))\n"
    local = _load_noxfile(tmp_path, script, **env)
    assert local.returncode == 0, local.stderr
    sessions = local.stdout.split()
    assert [s for s in sessions if s.startswith("tests-")] == ["tests-3.13"], sessions
    assert "slow" not in sessions
    assert "the fast tests run on Python 3.13 only; CI=true adds 3.10" in local.stderr
    in_ci = _load_noxfile(tmp_path, script, **env, CI="true")
    assert in_ci.returncode == 0, in_ci.stderr
    ci_sessions = in_ci.stdout.split()
    assert [s for s in ci_sessions if s.startswith("tests-")] == ["tests-3.10", "tests-3.13"]
    assert "slow" in ci_sessions
