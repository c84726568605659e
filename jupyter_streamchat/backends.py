"""Backends: a name, a protocol, a URL, and how to talk to it.

A backend is configured as a plain dict (the form ``c.StreamChatApp.backends``
takes, and the form ``jupyter streamchat demo`` prints)::

    {"protocol": "openai", "url": "http://127.0.0.1:8000/v1",
     "model": "llama3", "api_key_env": "OPENAI_API_KEY"}

:meth:`Backend.from_config` validates it; every error names the backend and
the field.  Secrets (``api_key``, header values) never leave this object:
:meth:`Backend.public` is what may be shown to a browser or a log.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, cast, get_args
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import ConfigError

__all__ = ["PROTOCOLS", "Backend", "Protocol", "Source", "redact_url"]

Protocol: TypeAlias = Literal[
    "openai", "responses", "anthropic", "ollama", "http", "websocket", "grpc"
]
"""Transport + default dialect.

``openai``     HTTP POST ``{url}/chat/completions``, SSE, dialect ``openai-chat``
``responses``  HTTP POST ``{url}/responses``, SSE, dialect ``openai-responses``
``anthropic``  HTTP POST ``{url}/v1/messages``, SSE, dialect ``anthropic-messages``
``ollama``     HTTP POST ``{url}/api/chat``, NDJSON, dialect ``ollama-chat``
``http``       HTTP POST ``{url}``, SSE or NDJSON (``framing``), dialect ``generic``
``websocket``  one JSON request message, one JSON message per frame, dialect ``generic``
``grpc``       ``jupyter_streamchat.v1.StreamChat`` (the shipped ``streamchat.proto``)
"""

PROTOCOLS: Final[tuple[str, ...]] = get_args(Protocol)

Source: TypeAlias = Literal["config", "demo", "discovered", "environment"]

_SCHEMES: Final[dict[str, tuple[str, ...]]] = {
    "openai": ("http", "https"),
    "responses": ("http", "https"),
    "anthropic": ("http", "https"),
    "ollama": ("http", "https"),
    "http": ("http", "https"),
    "websocket": ("ws", "wss"),
    "grpc": ("grpc", "grpcs"),
}
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_KNOWN_KEYS: Final = frozenset(
    {
        "protocol", "url", "dialect", "model", "models", "headers", "api_key", "api_key_env",
        "framing", "mapping", "connect_timeout", "idle_timeout", "max_seconds", "retries",
        "backoff_initial", "backoff_max", "grpc_method", "description",
    }
)  # fmt: skip


def redact_url(url: str) -> str:
    """Scheme, host and port only: user info, path, query or fragment may hold credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, "", "", ""))


def _split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without its user info, and that user info as a Basic ``authorization`` value.

    HTTP libraries log request URLs (httpx at INFO), so credentials must not stay in them;
    as a header they are a secret like any other.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    netloc = parts.netloc.rpartition("@")[2]
    basic = "Basic " + base64.b64encode(userinfo.encode()).decode()
    return urlunsplit(parts._replace(netloc=netloc)), basic


def _number(name: str, key: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"backend {name!r}: {key} must be a number >= {minimum}, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Backend:
    """A configured model backend.  Immutable; build with :meth:`from_config`."""

    name: str
    protocol: Protocol
    url: str
    dialect: str
    model: str | None = None
    models: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    framing: Literal["sse", "ndjson"] = "sse"
    mapping: tuple[tuple[str, Any], ...] = ()
    connect_timeout: float = 10.0
    idle_timeout: float = 120.0
    max_seconds: float | None = None
    retries: int = 2
    backoff_initial: float = 0.25
    backoff_max: float = 8.0
    grpc_method: Literal["generate", "chat"] = "generate"
    description: str = ""
    source: Source = "config"

    @classmethod
    def from_config(
        cls, name: str, config: Mapping[str, Any] | str, *, source: Source = "config"
    ) -> Backend:
        """Validate one backend entry; a bare string is taken as an OpenAI base URL."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"backend name {name!r} must be 1-64 of letters, digits, '_', '-', '.'"
            )
        if isinstance(config, str):
            config = {"protocol": "openai", "url": config}
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"backend {name!r}: config must be a dict, got {type(config).__name__}"
            )
        unknown = set(config) - _KNOWN_KEYS
        if unknown:
            raise ConfigError(
                f"backend {name!r}: unknown keys {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}"
            )
        protocol = config.get("protocol")
        if protocol not in PROTOCOLS:
            raise ConfigError(
                f"backend {name!r}: protocol must be one of {list(PROTOCOLS)}, got {protocol!r}"
            )
        url = config.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"backend {name!r}: url is required (a string)")
        scheme = urlsplit(url).scheme
        if scheme not in _SCHEMES[protocol]:
            raise ConfigError(
                f"backend {name!r}: a {protocol} url must start with "
                f"{' or '.join(s + '://' for s in _SCHEMES[protocol])}, got {redact_url(url)!r}"
            )
        from .dialects import DIALECTS, default_dialect_for

        dialect = config.get("dialect") or default_dialect_for(protocol)
        if protocol == "grpc":
            dialect = "streamchat-grpc"  # the shipped .proto; decoded by the gRPC adapter
        elif dialect not in DIALECTS:
            raise ConfigError(
                f"backend {name!r}: unknown dialect {dialect!r}; valid: {sorted(DIALECTS)}"
            )
        headers = config.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ConfigError(f"backend {name!r}: headers must be a dict of strings")
        url, basic = _split_credentials(url)
        if basic is not None and not any(k.lower() == "authorization" for k in headers):
            headers = {"authorization": basic, **headers}
        mapping = config.get("mapping") or {}
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"backend {name!r}: mapping must be a dict")
        models = config.get("models") or ()
        if isinstance(models, str) or not all(isinstance(m, str) for m in models):
            raise ConfigError(f"backend {name!r}: models must be a list of strings")
        framing = config.get("framing", "ndjson" if protocol == "ollama" else "sse")
        if framing not in ("sse", "ndjson"):
            raise ConfigError(
                f"backend {name!r}: framing must be 'sse' or 'ndjson', got {framing!r}"
            )
        grpc_method = config.get("grpc_method", "generate")
        if grpc_method not in ("generate", "chat"):
            raise ConfigError(
                f"backend {name!r}: grpc_method must be 'generate' or 'chat', got {grpc_method!r}"
            )
        for key in ("model", "api_key", "api_key_env", "description"):
            if config.get(key) is not None and not isinstance(config[key], str):
                raise ConfigError(f"backend {name!r}: {key} must be a string")
        retries = config.get("retries", 2)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            raise ConfigError(f"backend {name!r}: retries must be an integer 0-10, got {retries!r}")
        max_seconds = config.get("max_seconds")
        return cls(
            name=name,
            protocol=cast(Protocol, protocol),
            url=url,
            dialect=dialect,
            model=config.get("model"),
            models=tuple(models),
            headers=tuple(headers.items()),
            api_key=config.get("api_key"),
            api_key_env=config.get("api_key_env"),
            framing=framing,
            mapping=tuple(mapping.items()),
            connect_timeout=_number(name, "connect_timeout", config.get("connect_timeout", 10.0)),
            idle_timeout=_number(name, "idle_timeout", config.get("idle_timeout", 120.0)),
            max_seconds=None if max_seconds is None else _number(name, "max_seconds", max_seconds),
            retries=retries,
            backoff_initial=_number(name, "backoff_initial", config.get("backoff_initial", 0.25)),
            backoff_max=_number(name, "backoff_max", config.get("backoff_max", 8.0)),
            grpc_method=grpc_method,
            description=config.get("description") or "",
            source=source,
        )

    def resolve_api_key(self) -> str | None:
        """The key, read from the environment at request time when configured so."""
        if self.api_key:
            return self.api_key
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return None

    def request_headers(self) -> dict[str, str]:
        """Headers to send upstream, authentication included.  Secret: never log."""
        out: dict[str, str] = {}
        key = self.resolve_api_key()
        if key:
            if self.protocol == "anthropic":
                out["x-api-key"] = key
                out["anthropic-version"] = "2023-06-01"
            else:
                out["authorization"] = f"Bearer {key}"
        elif self.protocol == "anthropic":
            out["anthropic-version"] = "2023-06-01"
        out.update(self.headers)
        return out

    def public(self) -> dict[str, Any]:
        """What a browser or a log line may see: no key, no header values, no credentials."""
        return {
            "name": self.name,
            "protocol": self.protocol,
            "dialect": self.dialect,
            "url": redact_url(self.url),
            "model": self.model,
            "models": list(self.models),
            "source": self.source,
            "description": self.description,
            "authenticated": bool(self.api_key or self.api_key_env or self.headers),
        }

    def with_models(self, models: tuple[str, ...]) -> Backend:
        """A copy listing these models (e.g. after a probe)."""
        return Backend(
            **{**{f: getattr(self, f) for f in self.__dataclass_fields__}, "models": models}
        )
