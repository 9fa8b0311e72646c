"""`chatkit-kit demo` off the happy path: one-line errors, masked credentials, request origins."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatkit_kit._install import install_command
from chatkit_kit.demo._startup import (
    DemoStartupError,
    check_s3,
    local_url,
    mask_url,
    missing_module_message,
)
from chatkit_kit.demo.app import DemoConfig, build_app

from ._process import free_port, run_demo_to_exit

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cr%40t@db:5432/chat", "postgresql://app:***@db:5432/chat"),
        (
            "postgresql+asyncpg://u:p@h/db?ssl=require",
            "postgresql+asyncpg://u:***@h/db?ssl=require",
        ),
        ("postgresql://app@db/chat", "postgresql://app@db/chat"),
        ("sqlite+aiosqlite:///chatkit-demo.db", "sqlite+aiosqlite:///chatkit-demo.db"),
        ("mysql://root:@127.0.0.1/test", "mysql://root:***@127.0.0.1/test"),
        ("http://key:secret@[::1]:9000", "http://key:***@[::1]:9000"),
        ("postgresql://u:p@ss@h:notaport/db", "postgresql://u:***@h:notaport/db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_local_url_never_points_at_a_wildcard_address() -> None:
    assert local_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert local_url("::", 8000) == "http://127.0.0.1:8000"
    assert local_url("::1", 8000) == "http://[::1]:8000"
    assert local_url("192.0.2.7", 80) == "http://192.0.2.7:80"


def test_missing_module_message_names_the_extra() -> None:
    missing = ModuleNotFoundError("No module named 'asyncpg'", name="asyncpg")
    message = missing_module_message(missing)
    assert message.endswith(install_command("asyncpg")) and "'asyncpg'" in message
    missing = ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn")
    assert missing_module_message(missing).endswith(install_command("demo"))
    message = missing_module_message(ModuleNotFoundError("x", name="aiomysql.connection"))
    assert message.endswith(install_command("mysql")) and message.count("[mysql]") == 1


def _assert_one_line(status: int, stdout: str, stderr: str) -> str:
    assert status == 1, (stdout, stderr)
    assert "Traceback" not in stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("chatkit-kit demo: ")
    assert "open http" not in stdout  # nothing claims the demo is up
    return lines[0]


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://app:hunter2-secret@127.0.0.1:{free_port()}/chat"
    line = _assert_one_line(*run_demo_to_exit(tmp_path, "--database-url", url))
    assert "hunter2-secret" not in line
    assert "postgresql+asyncpg://app:***@127.0.0.1" in line
    assert "cannot open the database" in line


def test_unparseable_database_url_is_one_line(tmp_path: Path) -> None:
    line = _assert_one_line(*run_demo_to_exit(tmp_path, "--database-url", "no-such-scheme://x"))
    assert "cannot use the database URL no-such-scheme://x" in line


@pytest.mark.parametrize(
    ("module", "scheme", "extra"),
    [("psycopg", "postgresql+psycopg", "psycopg"), ("asyncpg", "postgresql+asyncpg", "asyncpg")],
)
def test_missing_driver_names_the_extra(
    tmp_path: Path, module: str, scheme: str, extra: str
) -> None:
    """What a user without the driver sees: one line naming the extra, not a 50-line traceback."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import sys

            class _Block:
                def find_spec(self, name, path=None, target=None):
                    if name == {module!r} or name.startswith({module + "."!r}):
                        raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                    return None

            sys.meta_path.insert(0, _Block())
            """
        )
    )
    url = f"{scheme}://app:pw-not-shown@127.0.0.1:5432/chat"
    status, stdout, stderr = run_demo_to_exit(
        tmp_path, "--database-url", url, env={"PYTHONPATH": str(blocker)}
    )
    line = _assert_one_line(status, stdout, stderr)
    assert f"{module!r}" in line and line.endswith(install_command(extra))
    assert line.count("pip install") == 1 and line.count(f"[{extra}]") == 1
    assert "pw-not-shown" not in line


def test_missing_s3_bucket_is_noticed_at_startup(tmp_path: Path, s3_endpoint: str) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    status, stdout, stderr = run_demo_to_exit(
        tmp_path,
        "--database-url",
        f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        "--s3-bucket",
        "no-such-bucket-here",
        "--s3-endpoint-url",
        s3_endpoint,
        env=env,
    )
    line = _assert_one_line(status, stdout, stderr)
    assert "S3 bucket 'no-such-bucket-here' does not exist at " + s3_endpoint in line
    assert "--s3-bucket" in line


async def test_s3_check_passes_for_an_existing_bucket_and_explains_bad_credentials(
    s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    await check_s3(bucket, s3_endpoint)
    with pytest.raises(DemoStartupError, match=r"cannot reach S3 at http://127\.0\.0\.1:"):
        await check_s3(bucket, f"http://127.0.0.1:{free_port()}")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(DemoStartupError, match="no AWS credentials for S3 bucket"):
        await check_s3(bucket, s3_endpoint)


async def test_page_and_preview_urls_use_the_address_the_browser_used(tmp_path: Path) -> None:
    """Bound to 0.0.0.0 and reached as 192.0.2.7:9000: every URL handed out uses the latter."""
    config = DemoConfig(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        files_dir=str(tmp_path / "files"),
        host="0.0.0.0",
        port=8000,
    )
    app = build_app(config)
    origin = "http://192.0.2.7:9000"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=origin) as http,
    ):
        page = (await http.get("/")).text
        assert f'"url": "{origin}/chatkit"' in page
        assert f'"uploadUrl": "{origin}/chatkit/attachments/upload"' in page
        assert "0.0.0.0" not in page

        upload = await http.post(
            "/chatkit/attachments/upload", files={"file": ("dot.png", PNG, "image/png")}
        )
        assert upload.status_code == 200, upload.text
        image: dict[str, Any] = upload.json()
        assert image["preview_url"] == f"{origin}/chatkit/attachments/{image['id']}"

        # The same attachment read back through another address points at that address.
        other = "http://localhost:9000"
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=other
        ) as http2:
            response = await http2.post(
                "/chatkit",
                json={
                    "type": "threads.create",
                    "params": {
                        "input": {
                            "content": [{"type": "input_text", "text": "pic"}],
                            "attachments": [image["id"]],
                            "inference_options": {},
                        }
                    },
                },
            )
            assert response.status_code == 200
            assert f"{other}/chatkit/attachments/{image['id']}" in response.text
            download = await http2.get(f"/chatkit/attachments/{image['id']}")
            assert download.status_code == 200 and download.content == PNG
