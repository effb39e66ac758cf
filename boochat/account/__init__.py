"""The user's own pages about the gateway: keys, how to connect, usage."""
