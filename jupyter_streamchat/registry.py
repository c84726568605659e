"""Where backend names come from, for code running outside the Jupyter server.

Looked up in order: backends registered in this process (:func:`configure`),
then ``c.StreamChatApp.backends`` from the Jupyter config files (so a kernel
knows the same names as the server), then the demo backends ``demo-sse``,
``demo-ndjson``, ``demo-ws`` and ``demo-grpc``, which start in this process on
first use.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Final

from .backends import Backend
from .errors import ConfigError, UnknownBackend

__all__ = ["DEMO_NAMES", "configure", "known_names", "resolve"]

DEMO_NAMES: Final = ("demo-sse", "demo-ndjson", "demo-ws", "demo-grpc")

_lock = threading.Lock()
_registered: dict[str, Backend] = {}
_from_config: dict[str, Backend] | None = None
_demo: dict[str, Backend] | None = None
_demo_servers: Any = None


def configure(backends: Mapping[str, Mapping[str, Any] | str | Backend]) -> None:
    """Register backends by name for this process (overrides config files)."""
    parsed = {
        name: value if isinstance(value, Backend) else Backend.from_config(name, value)
        for name, value in backends.items()
    }
    with _lock:
        _registered.update(parsed)


def _load_jupyter_config() -> dict[str, Backend]:
    """``StreamChatApp.backends`` from the Jupyter config path, if any."""
    try:
        from jupyter_core.paths import jupyter_config_path
        from traitlets.config.loader import (
            ConfigFileNotFound,
            JSONFileConfigLoader,
            PyFileConfigLoader,
        )
    except ImportError:  # pragma: no cover - jupyter_core is a dependency
        return {}
    merged: dict[str, Any] = {}
    for directory in reversed(jupyter_config_path()):
        for loader_cls, filename in (
            (JSONFileConfigLoader, "jupyter_server_config.json"),
            (PyFileConfigLoader, "jupyter_server_config.py"),
        ):
            try:
                config = loader_cls(filename, path=directory).load_config()
            except ConfigFileNotFound:
                continue
            except Exception as exc:  # a broken config file must not break a kernel
                raise ConfigError(f"could not read {filename} in {directory}: {exc}") from exc
            section = config.get("StreamChatApp", {})
            backends = section.get("backends") if hasattr(section, "get") else None
            if isinstance(backends, Mapping):
                merged.update(backends)
    return {name: Backend.from_config(name, value) for name, value in merged.items()}


def _configured() -> dict[str, Backend]:
    global _from_config
    if _from_config is None:
        _from_config = _load_jupyter_config()
    return _from_config


def _start_demo() -> dict[str, Backend]:
    """Start the demo doors on the background loop (once per process)."""
    global _demo, _demo_servers
    with _lock:
        if _demo is None:
            from .demo.servers import DemoServers
            from .runtime import submit

            servers = DemoServers()
            submit(servers.start()).result(timeout=30)
            _demo_servers = servers
            _demo = {
                name: Backend.from_config(name, config, source="demo")
                for name, config in servers.backend_configs().items()
            }
        return _demo


def known_names() -> list[str]:
    """Every name :func:`resolve` accepts."""
    return sorted({*_registered, *_configured(), *DEMO_NAMES})


def resolve(backend: str | Backend | Mapping[str, Any]) -> Backend:
    """A :class:`Backend` from a name, a config dict, or a backend."""
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, Mapping):
        config = {k: v for k, v in backend.items() if k != "name"}
        return Backend.from_config(str(backend.get("name", "custom")), config)
    if not isinstance(backend, str):
        raise ConfigError(
            f"backend must be a name, a dict or a Backend, got {type(backend).__name__}"
        )
    found = _registered.get(backend) or _configured().get(backend)
    if found is not None:
        return found
    if backend in DEMO_NAMES:
        return _start_demo()[backend]
    raise UnknownBackend(backend, known_names())
