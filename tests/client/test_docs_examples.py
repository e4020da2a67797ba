"""The Python examples of docs/partner-client.md run, in order, against a real server."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from gateway.demo.workspace import Workspace
from tests.client.conftest import Server

pytestmark = pytest.mark.slow

PAGE = Path(__file__).resolve().parents[2] / "docs" / "partner-client.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_partner_guide_examples_run(
    served: Server, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("KITELINE_URL", served.url)
    monkeypatch.setenv("KITELINE_TOKEN", workspace.tokens["mei"])
    monkeypatch.setenv("STELLAR_TOKEN", workspace.tokens["sam"])
    blocks = python_blocks()
    assert len(blocks) >= 7
    namespace: dict[str, object] = {}
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            for block in blocks:
                exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
    finally:
        for name in ("client", "stellar"):
            closing = namespace.get(name)
            if closing is not None:
                closing.close()  # type: ignore[attr-defined]
    lines = printed.getvalue().splitlines()
    assert lines[0].endswith("['patient_id', 'birth_date', 'diagnosis']")
    assert lines[1].startswith("anonymized ")
    assert lines[2] == "120000"  # every row of the (enlarged) studies, in pages
    assert lines[4].startswith("403 ")  # mei holds no grant on customers
    assert lines[5].startswith("False ")
    assert lines[-1] == "True data.query"
