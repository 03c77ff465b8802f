"""What a notebook parameter may hold (:class:`Param`), and the checks every value goes through."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

__all__ = ["COMMON_PARAMS", "Param", "validate_parameters"]


@dataclass(frozen=True, slots=True)
class Param:
    """What one notebook parameter may hold.

    ``kind`` is the Python type (``float`` also accepts an ``int``; ``bool`` is never taken
    for an ``int``); ``items`` is the element type of a ``list``; ``choices`` the allowed
    values; ``minimum``/``maximum`` bound numbers (inclusive); ``meaning`` is shown in errors.
    """

    kind: type
    meaning: str = ""
    items: type | None = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False


#: The parameters every notebook and runbook takes (each may add its own).
COMMON_PARAMS: dict[str, Param] = {
    "redis_url_env": Param(str, "name of the environment variable holding the Redis URL"),
    "embedded": Param(
        bool, "True: an embedded Redis and reference backends; None: decide by who runs it", optional=True
    ),
    "backend_urls": Param(list, "backend base URLs (http://host:port), one per instance or a load balancer", str),
    "read_only": Param(bool, "forbid writes to a real target (probe sessions SKIP)"),
    "key_prefix": Param(str, "prefix of the session keys in Redis"),
    "timeout_seconds": Param(float, "longest wait for one network step, seconds", minimum=0.05, maximum=600),
    "budget_seconds": Param(float, "time budget of the whole notebook, seconds", minimum=1, maximum=3600),
}


def _type_name(kind: type) -> str:
    return {str: "a string", bool: "True or False", int: "a whole number", float: "a number", list: "a list"}.get(
        kind, kind.__name__
    )


def _check_one(name: str, value: Any, spec: Param) -> Any:
    if value is None and spec.optional:
        return None
    kind = spec.kind
    ok: bool
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif kind is list:
        ok = isinstance(value, list | tuple)
        if ok:
            value = list(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(
            f"parameter {name!r}",
            f"must be {_type_name(kind)} ({spec.meaning}), got {type(value).__name__}",
        )
    if spec.items is not None and isinstance(value, list):
        for index, item in enumerate(value):
            _check_one(f"{name}[{index}]", item, Param(spec.items, spec.meaning))
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(repr(c) for c in spec.choices)
        raise ConfigError(f"parameter {name!r}", f"must be one of {allowed}, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):  # NaN passes every comparison: refuse it before the bounds
            raise ConfigError(f"parameter {name!r}", f"must be a finite number ({spec.meaning}), got {value!r}")
        if spec.minimum is not None and value < spec.minimum:
            raise ConfigError(f"parameter {name!r}", f"must be at least {spec.minimum} ({spec.meaning}), got {value!r}")
        if spec.maximum is not None and value > spec.maximum:
            raise ConfigError(f"parameter {name!r}", f"must be at most {spec.maximum} ({spec.meaning}), got {value!r}")
    return value


def validate_parameters(values: Mapping[str, Any], spec: Mapping[str, Param]) -> dict[str, Any]:
    """Check ``values`` against ``spec``; return them normalized (``int`` → ``float`` where a number is wanted).

    Raises :class:`ConfigError` naming the parameter for an unknown name, a missing one, a wrong
    type or a value out of range. Credentials are refused: ``redis_url_env`` must name a
    variable (a URL there is rejected without echoing it) and backend URLs carry no password.
    """
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise ConfigError(f"parameter {unknown[0]!r}", f"is unknown; known parameters: {', '.join(sorted(spec))}")
    out: dict[str, Any] = {}
    for name, param in spec.items():
        if name not in values:
            if param.optional:
                out[name] = None
                continue
            raise ConfigError(f"parameter {name!r}", f"is missing ({param.meaning})")
        out[name] = _check_one(name, values[name], param)
    env_name = out.get("redis_url_env")
    if isinstance(env_name, str) and not env_name.replace("_", "").isalnum():
        # Do not echo the value: someone may have pasted the URL (and its password) here.
        raise ConfigError(
            "parameter 'redis_url_env'",
            "must name an environment variable (like REDIS_URL), not hold the URL itself",
        )
    for number, url in enumerate(out.get("backend_urls") or [], start=1):
        # A URL that does not parse is never quoted, masked or not: a password with '#', '/' or
        # '?' in it makes the parse cut it anywhere, so no part of it is known to be safe to show.
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                "parameter 'backend_urls'", f"must hold http(s)://host:port URLs; entry {number} is not one"
            )
        if parts.password or "@" in url:
            raise ConfigError("parameter 'backend_urls'", "must not carry credentials")
    if isinstance(out.get("key_prefix"), str) and not out["key_prefix"]:
        raise ConfigError("parameter 'key_prefix'", "must not be empty (the default is 'session:')")
    return out
