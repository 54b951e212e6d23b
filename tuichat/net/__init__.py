"""Networking shared by the server and the client (no Textual here)."""
