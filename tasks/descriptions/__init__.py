"""Hand-written class descriptions of the built-in real tasks (``kmat.descriptions/v1`` JSON files)."""
