"""What gets embedded and stored for each kind of entity: its text and its vector payload.

Point ids are the entities' own UUIDs (agents, workflows); a knowledge chunk's id is
uuid5(document_id, chunk_index), so a deleted document's points can be named without its rows.
The agents' live status is never stored in a payload: it changes with every heartbeat and is
read from PostgreSQL at search time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

AGENTS, WORKFLOWS, KNOWLEDGE = "agents", "workflows", "knowledge"
# search_outbox.kind -> collection
COLLECTION_OF_KIND = {"agent": AGENTS, "workflow": WORKFLOWS, "knowledge": KNOWLEDGE}
# Workflow statuses that are searchable (drafts are not).
INDEXED_WORKFLOW_STATUSES = ("published", "deprecated")


@dataclass(frozen=True)
class Document:
    """One point to be: its id, the text to embed and the payload stored beside the vector."""

    id: str
    text: str
    payload: dict[str, Any]


def chunk_id(document_id: str, index: int) -> str:
    return str(uuid.uuid5(uuid.UUID(document_id), str(index)))


def _words(value: str) -> str:
    """`summarize_text` / `code-review` read as words by an embedding model."""
    return value.replace("_", " ").replace("-", " ")


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def agent_description(row: Any) -> str:
    metadata = row["metadata"] if isinstance(row["metadata"], dict) else {}
    description = metadata.get("description", "")
    return description if isinstance(description, str) else ""


def agent_document(row: Any) -> Document:
    capabilities = _strings(row["capabilities"])
    description = agent_description(row)
    # What the agent does first: a shared template would pull every agent's vector together.
    parts = [f"{_words(row['name'])}: {description}" if description else f"{_words(row['name'])}."]
    if capabilities:
        parts.append("Capabilities: " + ", ".join(_words(c) for c in capabilities) + ".")
    parts.append(f"Type: {row['type']}.")
    payload = {
        "agent_id": row["id"],
        "name": row["name"],
        "agent_type": row["type"],
        "capabilities": capabilities,
        "description": description,
        "version": row["version"],
    }
    return Document(row["id"], " ".join(parts), payload)


def workflow_tags(definition: Any) -> list[str]:
    return _strings(definition.get("tags")) if isinstance(definition, dict) else []


def workflow_steps(definition: Any) -> list[dict[str, Any]]:
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def workflow_document(row: Any) -> Document:
    definition = row["definition"]
    tags = workflow_tags(definition)
    steps = workflow_steps(definition)
    name = _words(row["name"])
    parts = [f"{name}: {row['description']}" if row["description"] else f"{name}."]
    if tags:
        parts.append("Tags: " + ", ".join(tags) + ".")
    described = []
    for step in steps:
        what = step.get("capability_query") or step.get("capability") or step.get("id")
        if isinstance(what, str) and what and _words(what) not in described:
            described.append(_words(what))
    if described:
        parts.append("Steps: " + ", ".join(described) + ".")
    payload = {
        "workflow_id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "tags": tags,
        "complexity": float(len(steps)),
        "version": row["version"],
        "status": row["status"],
    }
    return Document(row["id"], " ".join(parts), payload)


def epoch(value: datetime) -> float:
    return value.timestamp()


def chunk_document(row: Any) -> Document:
    """A knowledge chunk (joined with its document's timestamp)."""
    payload = {
        "document_id": row["document_id"],
        "chunk": row["chunk_index"],
        "content": row["content"],
        "source": row["source"],
        "timestamp": epoch(row["timestamp"]),
        "metadata": row["metadata"] or {},
    }
    return Document(row["id"], row["content"], payload)
