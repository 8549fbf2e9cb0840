"""en–zh parallel text: pairs read as documents, checked per pair, deduplicated."""
