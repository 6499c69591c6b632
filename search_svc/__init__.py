"""The search service: semantic search over agents, workflows and a knowledge base (ossa.search.v1)."""
