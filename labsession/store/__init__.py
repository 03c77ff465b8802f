"""The Redis store: one :class:`RedisService` per process (URL config, TLS, bounded retries,
fail fast, masked logs) and the classification of what went wrong (:mod:`.classify`)."""

from __future__ import annotations

from .service import RedisHealth, RedisService, StoreIdentity

__all__ = ["RedisHealth", "RedisService", "StoreIdentity"]
