"""Sequence models: recurrent networks, attention, the Transformer and the language models built on it."""
