"""Chat: turns, what the model sees, compaction, the relay, titles, autosave, and their views."""
