"""`chatkit-kit demo` as a real process, driven over HTTP the way ChatKit.js drives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._process import Demo, done_items, free_port, message


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_demo_serves_chatkit_and_keeps_data_across_restarts(workdir: Path) -> None:
    port = free_port()
    demo = Demo(workdir, port)
    try:
        page = demo.http.get("/").text
        assert "chatkit.js" in page and "<openai-chatkit" in page
        assert f'"url": "http://127.0.0.1:{port}/chatkit"' in page
        assert '"type": "direct"' in page and '"enabled": true' in page

        # threads.create, streamed
        events = demo.stream({"type": "threads.create", "params": {"input": message("hello")}})
        assert events[0]["type"] == "thread.created"
        thread_id = events[0]["thread"]["id"]
        user, assistant = done_items(events)
        assert user["type"] == "user_message" and assistant["type"] == "assistant_message"
        assert 'You said: "hello".' in assistant["content"][0]["text"]
        deltas = [e for e in events if e["type"] == "thread.item.updated"]
        assert len(deltas) > 3  # streamed in pieces, not one blob

        # more threads, then threads.list page by page
        others = []
        for text in ("second", "third"):
            created = demo.stream({"type": "threads.create", "params": {"input": message(text)}})
            others.append(created[0]["thread"]["id"])
        page1 = demo.request({"type": "threads.list", "params": {"limit": 2}})
        assert [t["id"] for t in page1["data"]] == [others[1], others[0]]
        assert page1["has_more"] is True and page1["after"] == others[0]
        page2 = demo.request(
            {"type": "threads.list", "params": {"limit": 2, "after": page1["after"]}}
        )
        assert [t["id"] for t in page2["data"]] == [thread_id] and page2["has_more"] is False

        # a direct upload, then a message that uses it
        upload = demo.http.post(
            "/chatkit/attachments/upload",
            files={"file": ("notes.txt", b"remember the milk", "text/plain")},
        )
        assert upload.status_code == 200, upload.text
        attachment = upload.json()
        assert attachment["name"] == "notes.txt" and "metadata" not in attachment
        events = demo.stream(
            {
                "type": "threads.add_user_message",
                "params": {
                    "thread_id": thread_id,
                    "input": message("see file", [attachment["id"]]),
                },
            }
        )
        user, assistant = done_items(events)
        assert [a["id"] for a in user["attachments"]] == [attachment["id"]]
        assert '"notes.txt"' in assistant["content"][0]["text"]

        # items.list, newest first, page by page
        items1 = demo.request(
            {"type": "items.list", "params": {"thread_id": thread_id, "limit": 3}}
        )
        assert [i["type"] for i in items1["data"]] == [
            "assistant_message",
            "user_message",
            "assistant_message",
        ]
        assert items1["has_more"] is True
        items2 = demo.request(
            {
                "type": "items.list",
                "params": {"thread_id": thread_id, "limit": 3, "after": items1["after"]},
            }
        )
        assert [i["type"] for i in items2["data"]] == ["user_message"]
        assert items2["has_more"] is False

        # threads.update, threads.delete
        updated = demo.request(
            {"type": "threads.update", "params": {"thread_id": thread_id, "title": "Renamed"}}
        )
        assert updated["title"] == "Renamed"
        assert demo.request({"type": "threads.delete", "params": {"thread_id": others[1]}}) == {}
    finally:
        output = demo.stop()
    assert "offline responder" in output and "stopped" in output

    # A second start reuses the same data.
    demo = Demo(workdir, port)
    try:
        listed = demo.request({"type": "threads.list", "params": {}})
        assert [t["id"] for t in listed["data"]] == [others[0], thread_id]
        assert listed["data"][1]["title"] == "Renamed"
        thread = demo.request({"type": "threads.get_by_id", "params": {"thread_id": thread_id}})
        assert len(thread["items"]["data"]) == 4
        download = demo.http.get(f"/chatkit/attachments/{attachment['id']}")
        assert download.status_code == 200 and download.content == b"remember the milk"
    finally:
        demo.stop()
    assert (workdir / "chatkit-demo.db").exists()
