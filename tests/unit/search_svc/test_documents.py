"""search_svc without servers: what is embedded and stored per entity, the retry backoff, request
checks, and `ossa reindex`'s errors (the service itself: tests/integration/search_svc/test_servicer.py)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ossa.search.v1 import search_pb2 as pb
from ossa_cli.main import main
from ossa_runtime.errors import InvalidArgument
from search_svc import validation
from search_svc.documents import agent_document, chunk_document, chunk_id, workflow_document
from search_svc.outbox import Outbox

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def agent_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": "invoice-reader",
        "type": "integrator",
        "version": "1.2.0",
        "status": "busy",
        "capabilities": ["extract_invoice", "ocr"],
        "metadata": {"description": "Reads invoices."},
    }
    row.update(changes)
    return row


def test_agent_text_and_payload_leave_the_live_status_out() -> None:
    row = agent_row()
    doc = agent_document(row)
    assert doc.id == row["id"]
    assert doc.text == "invoice reader: Reads invoices. Capabilities: extract invoice, ocr. Type: integrator."
    assert doc.payload == {
        "agent_id": row["id"],
        "name": "invoice-reader",
        "agent_type": "integrator",
        "capabilities": ["extract_invoice", "ocr"],
        "description": "Reads invoices.",
        "version": "1.2.0",
    }


def test_agent_with_odd_metadata_still_indexes() -> None:
    doc = agent_document(agent_row(metadata={"description": 42}, capabilities=[]))
    assert doc.payload["description"] == "" and doc.text == "invoice reader. Type: integrator."


def test_workflow_payload_has_tags_and_complexity() -> None:
    row = {
        "id": str(uuid.uuid4()),
        "name": "month-end",
        "version": "1.0.0",
        "description": "Closes the books.",
        "status": "published",
        "definition": {
            "tags": ["finance", 3],
            "steps": [{"id": "a", "capability": "reconcile"}, {"id": "b", "capability_query": "send the report"}],
        },
    }
    doc = workflow_document(row)
    assert doc.payload["tags"] == ["finance"] and doc.payload["complexity"] == 2.0
    assert doc.text == "month end: Closes the books. Tags: finance. Steps: reconcile, send the report."


def test_chunk_ids_are_stable_and_distinct() -> None:
    document = str(uuid.uuid4())
    assert chunk_id(document, 0) == chunk_id(document, 0) != chunk_id(document, 1)
    row = {
        "id": chunk_id(document, 1),
        "document_id": document,
        "chunk_index": 1,
        "content": "text",
        "source": "wiki",
        "metadata": None,
        "timestamp": NOW,
    }
    doc = chunk_document(row)
    assert doc.payload["timestamp"] == NOW.timestamp() and doc.payload["metadata"] == {}


def test_backoff_doubles_up_to_the_cap() -> None:
    outbox = Outbox(pool=None, retry_seconds=0.5, retry_max_seconds=4.0)  # type: ignore[arg-type]
    assert [outbox.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert outbox.backoff(10_000) == 4.0


def test_queries_default_and_trim() -> None:
    q = validation.parse_agent_query(pb.SearchAgentsRequest(query="  summarise this  "))
    assert (q.query, q.type, q.status, q.limit) == ("summarise this", None, None, 10)


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(InvalidArgument) as err:
        validation.parse_new_knowledge(pb.AddKnowledgeRequest(content=" ", source=" bad "))
    assert [v.field for v in err.value.violations] == ["content", "source"]


def test_knowledge_timestamp_defaults_to_now() -> None:
    new = validation.parse_new_knowledge(pb.AddKnowledgeRequest(content="x", source="s"))
    assert new.timestamp.tzinfo is not None and new.metadata == {}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("OSSA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OSSA_DATA_DIR", str(tmp_path))
    return tmp_path


def test_reindex_without_a_token_is_a_clear_error(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reindex"]) == 2
    assert "no admin token" in capsys.readouterr().err


def test_reindex_against_nothing_exits_1(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["reindex", "--token", "x.y.z", "--gateway", "127.0.0.1:1"])
    assert code == 1
    assert "refused to reindex: UNAVAILABLE" in capsys.readouterr().err
