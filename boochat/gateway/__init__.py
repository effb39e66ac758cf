"""The OpenAI-compatible gateway (/v1/)."""
