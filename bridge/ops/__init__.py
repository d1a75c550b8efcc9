"""The operator's window on a running daemon: `/health`, `/metrics` and the inspector page on a loopback port
(`[daemon] http`), the feed behind the page and `engine-bridge tap`, and the `top`, `tap` and `validate`
commands. The daemon hands it callables and a store; it imports neither the ingress nor the dispatcher."""

from .server import Ops, OpsHooks

__all__ = ["Ops", "OpsHooks"]
