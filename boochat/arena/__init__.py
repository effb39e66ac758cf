"""The arena: one prompt to several models side by side, and a comparison of their answers."""
