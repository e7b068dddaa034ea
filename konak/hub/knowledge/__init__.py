"""Each tenant's knowledge: collections of passages searchable by meaning (docs/knowledge.md)."""
