"""A local stand-in for TagMango's documented external API (see tagmango-api.md).

``SandboxConfig`` says how it behaves (tokens, hosts, faults), ``build_app`` makes the ASGI
app, ``serve_in_thread`` runs it for tests and the one-command demo.
"""

from importer.sandbox.app import build_app
from importer.sandbox.config import DEFAULT_MANGOES, DEFAULT_TOKEN, SandboxConfig
from importer.sandbox.server import RunningSandbox, serve_in_thread

__all__ = ["DEFAULT_MANGOES", "DEFAULT_TOKEN", "SandboxConfig", "build_app", "RunningSandbox", "serve_in_thread"]
