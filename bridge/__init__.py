"""engine-bridge: a local daemon between game engines and analytics providers.

Engines send events over ZeroMQ (protocol.md); the daemon stores them durably and forwards them; remote
configs flow back on the configs socket.
"""

__version__ = "0.1.0"
