"""Real servers for laptops and CI: an embedded redis-server (or a Redis Cluster of them), the
reference backend as child processes, and the embedded target that puts them together."""

from __future__ import annotations

from .redis_server import EmbeddedRedis, TlsFiles, find_redis_server, free_port, redis_server_version, supports_tls

__all__ = ["EmbeddedRedis", "TlsFiles", "find_redis_server", "free_port", "redis_server_version", "supports_tls"]
