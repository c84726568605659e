"""Every notebook in notebooks/ runs headless (nbclient, no browser) on the demo backends.

With no page to take them, the widgets' prompts are answered by the kernel itself, so
the executed notebook's saved widget state must hold finished conversations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def chat_histories(nb: Any) -> list[list[dict[str, Any]]]:
    """The ``history`` of every ChatWidget in the notebook's saved widget state."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return [
        model["state"]["history"]
        for model in state.get("state", {}).values()
        if model.get("model_name") == "AnyModel" and "history" in model.get("state", {})
    ]


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "streaming.ipynb"}


def test_the_quickstart_opens_on_a_working_chat() -> None:
    nb = nbformat.read(NOTEBOOKS[[p.name for p in NOTEBOOKS].index("quickstart.ipynb")], 4)
    first = nb.cells[0]
    assert first.cell_type == "code"
    assert "ChatWidget(backend=" in first.source
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        "notebooks are stored without outputs"
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_notebook_runs_headless(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))  # the demo backends only
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    nb = nbformat.read(path, 4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()  # raises CellExecutionError, naming the cell, if any cell fails
    histories = [h for h in chat_histories(nb) if h]
    assert histories, "no chat was answered"
    for history in histories:
        replies = [m for m in history if m["role"] == "assistant"]
        assert replies
        for reply in replies:
            assert reply["status"] in ("done", "error"), reply["status"]
            assert reply["content"], "a reply with no text"
            assert reply["timing"]["events"], "a reply with no recorded timing"
    statuses = [m["status"] for h in histories for m in h if m["role"] == "assistant"]
    assert statuses.count("done") >= 2
