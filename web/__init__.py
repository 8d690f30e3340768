"""The monitoring UI and HTTP API (FastAPI, server-rendered pages, small vanilla JS)."""
