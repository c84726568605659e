"""Real processes for the browser tests and the render benchmark (see BROWSER-TESTING.md).

* :class:`DemoProcess` — ``jupyter streamchat demo`` in its own process, so a test
  reads its ``/stats`` (open streams per door) directly;
* :class:`JupyterProcess` — JupyterLab or Notebook 7 in its own process with its
  own ``JUPYTER_*`` directories, the bridge's backends pointing at that demo, the
  news toast off and widget state saved with notebooks;
* :class:`CutProxy` — a TCP proxy in front of the server that can cut the
  connections carrying a given request (a dropped browser connection);
* :class:`NotebookPage` — one notebook open in Chromium: wait for the kernel,
  run a cell, find a chat widget, sample what the page shows over time.

Every wait is bounded; nothing here sleeps to assert.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import nbformat

T = TypeVar("T")

BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
App = Literal["lab", "notebook"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not true within {timeout} s (last: {last!r})")
        time.sleep(interval)


def http_json(url: str, headers: Mapping[str, str] | None = None, timeout: float = 10) -> Any:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _stop(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    if process.stdout is not None:
        process.stdout.close()


# ---------------------------------------------------------------------- demo


@dataclass
class DemoProcess:
    """``jupyter streamchat demo`` running in its own process."""

    process: subprocess.Popen[str]
    urls: dict[str, Any]

    @classmethod
    @contextlib.contextmanager
    def run(cls, *extra: str) -> Iterator[DemoProcess]:
        process = subprocess.Popen(
            [str(BIN / "jupyter"), "streamchat", "demo", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 30)
            if not ready:
                raise RuntimeError("jupyter streamchat demo printed nothing within 30 s")
            yield cls(process, json.loads(process.stdout.readline()))
        finally:
            _stop(process)

    @property
    def backends(self) -> dict[str, Any]:
        return dict(self.urls["backends"])

    def doors(self) -> dict[str, dict[str, Any]]:
        """The per-door counters of ``GET /stats``."""
        return dict(http_json(self.urls["stats"])["doors"])

    def open_streams(self) -> int:
        return sum(int(d["open_streams"]) for d in self.doors().values())

    def requests(self) -> int:
        return sum(int(d["requests"]) for d in self.doors().values())


# ------------------------------------------------------------------- jupyter


@dataclass
class JupyterProcess:
    """JupyterLab or Notebook 7 with isolated Jupyter directories."""

    app: App
    root: Path
    port: int
    token: str
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(repr=False)

    @classmethod
    @contextlib.contextmanager
    def run(
        cls,
        app: App,
        backends: Mapping[str, Any],
        *,
        base_url: str = "/",
        extension: bool = True,
        save_widget_state: bool = True,
        streamchat: Mapping[str, Any] | None = None,
    ) -> Iterator[JupyterProcess]:
        tmp = Path(tempfile.mkdtemp(prefix=f"streamchat-{app}-"))
        try:
            root = tmp / "notebooks"
            root.mkdir()
            dirs = {
                "JUPYTER_CONFIG_DIR": tmp / "config",
                "JUPYTER_DATA_DIR": tmp / "data",
                "JUPYTER_RUNTIME_DIR": tmp / "runtime",
                "JUPYTERLAB_SETTINGS_DIR": tmp / "settings",
                "JUPYTERLAB_WORKSPACES_DIR": tmp / "workspaces",
                "IPYTHONDIR": tmp / "ipython",
            }
            for path in dirs.values():
                path.mkdir()
            env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
            env.pop("JUPYTER_PLATFORM_DIRS", None)
            token = secrets.token_hex(16)
            port = free_port()
            # The kernel reads StreamChatApp.backends from this file too (registry.py),
            # so the kernel path streams from the same demo process.
            config = {
                "ServerApp": {"jpserver_extensions": {"jupyter_streamchat": extension}},
                "StreamChatApp": {
                    "backends": dict(backends),
                    "demo": False,
                    "discovery": False,
                    **(streamchat or {}),
                },
            }
            (dirs["JUPYTER_CONFIG_DIR"] / "jupyter_server_config.json").write_text(
                json.dumps(config)
            )
            labconfig = dirs["JUPYTER_CONFIG_DIR"] / "labconfig"
            labconfig.mkdir()
            (labconfig / "page_config.json").write_text(
                json.dumps(
                    {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
                )
            )
            if save_widget_state:
                plugin = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyter-widgets" / "jupyterlab-manager"
                plugin.mkdir(parents=True)
                (plugin / "plugin.jupyterlab-settings").write_text('{"saveState": true}')
            expose = "LabApp" if app == "lab" else "JupyterNotebookApp"
            args = [
                str(BIN / "jupyter"),
                app,
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--ServerApp.base_url={base_url}",
                f"--ServerApp.root_dir={root}",
                f"--IdentityProvider.token={token}",
                f"--{expose}.expose_app_in_browser=True",
                "--ServerApp.log_level=INFO",
            ]
            if os.geteuid() == 0:
                args.append("--allow-root")
            log = tmp / "server.log"
            with log.open("wb") as out:
                process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
            server = cls(app, root, port, token, base_url, process, log, env)
            try:
                wait_for(server._up, 60, f"{app} server at {server.url('api/status')}", 0.2)
                yield server
            finally:
                _stop(process)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.app} exited early:\n{self.log.read_text()[-3000:]}")
        try:
            http_json(self.url("api/status"), self.auth, timeout=2)
        except OSError:
            return False
        return True

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}{self.base_url}{path}"

    def notebook_url(self, name: str, port: int | None = None) -> str:
        # Lab: `reset` starts from an empty workspace, not the tabs of an earlier test.
        path = f"lab/tree/{name}?reset&" if self.app == "lab" else f"notebooks/{name}?"
        return self.url(f"{path}token={self.token}", port)

    def write_notebook(self, name: str, cells: Sequence[str]) -> Path:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        path = self.root / name
        nbformat.write(nb, path)
        return path

    def read_notebook(self, name: str) -> Any:
        return nbformat.read(self.root / name, as_version=4)

    def shutdown_kernels(self) -> None:
        """Stop every kernel (between tests that share the server)."""
        for kernel in http_json(self.url("api/kernels"), self.auth):
            request = urllib.request.Request(
                self.url(f"api/kernels/{kernel['id']}"), method="DELETE", headers=self.auth
            )
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=10).close()


# --------------------------------------------------------------------- proxy


class CutProxy:
    """A loopback TCP proxy whose connections can be cut on demand.

    Each connection remembers the last HTTP request line the browser sent on
    it (keep-alive carries several), so :meth:`cut` can drop exactly the
    connections streaming a reply, as a flaky network would.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._conns: dict[int, tuple[socket.socket, socket.socket, list[str]]] = {}
        self._next = 0
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="cut-proxy").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                key = self._next
                self._next += 1
                request: list[str] = [""]
                self._conns[key] = (client, upstream, request)
            threading.Thread(
                target=self._pump, args=(key, client, upstream, request), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(key, upstream, client, None), daemon=True
            ).start()

    def _pump(
        self, key: int, src: socket.socket, dst: socket.socket, request: list[str] | None
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if request is not None:
                    for method in (b"GET ", b"POST ", b"DELETE ", b"PUT ", b"PATCH "):
                        at = data.find(method)
                        if at == 0 or (at > 0 and data[at - 2 : at] == b"\r\n"):
                            request[0] = data[at : data.find(b"\r\n", at)].decode("latin-1")
                            break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(key)

    def _close(self, key: int) -> None:
        with self._lock:
            conn = self._conns.pop(key, None)
        if conn is not None:
            for sock in conn[:2]:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut(self, request_contains: str) -> int:
        """Cut every connection whose last request line contains this; returns how many."""
        with self._lock:
            keys = [k for k, (_, _, req) in self._conns.items() if request_contains in req[0]]
        for key in keys:
            self._close(key)
        self.cuts += len(keys)
        return len(keys)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            keys = list(self._conns)
        for key in keys:
            self._close(key)


# ---------------------------------------------------------------------- page

_KERNEL_READY = """() => {
  const app = window.jupyterapp;
  const widget = app && app.shell && app.shell.currentWidget;
  const ctx = widget && widget.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  return !!kernel && ctx.isReady && kernel.connectionStatus === "connected"
    && kernel.status === "idle";
}"""

_SAVE = """async () => {
  const widget = window.jupyterapp.shell.currentWidget;
  await widget.context.save();
  return widget.context.model.dirty;
}"""

# Records a reply's `data-tokens` (tokens painted by the streaming renderer; -1
# when the reply is drawn from `history` instead) and its text length at every
# DOM change, stamped in the page: arrivals are measured where the user sees them.
_OBSERVE = """([root, index]) => {
  const samples = [];
  window.__streamchatSamples = window.__streamchatSamples || {};
  window.__streamchatSamples[index] = samples;
  const take = () => {
    const el = root.querySelector(
      `.streamchat-message[data-role="assistant"][data-index="${index}"] .streamchat-content`);
    if (!el) return;
    const n = el.dataset.tokens !== undefined ? Number(el.dataset.tokens) : -1;
    const c = el.textContent.length;
    const last = samples[samples.length - 1];
    if (!last || last[1] !== n || last[2] !== c) samples.push([performance.now(), n, c]);
  };
  new MutationObserver(take).observe(root, {subtree: true, attributes: true,
    attributeFilter: ["data-tokens"], childList: true, characterData: true});
  take();
}"""


class NotebookPage:
    """One notebook open in Chromium (JupyterLab or Notebook 7)."""

    def __init__(self, page: Any, server: JupyterProcess) -> None:
        self.page = page
        self.server = server

    def open(self, name: str, port: int | None = None, timeout: float = 60) -> NotebookPage:
        self.page.goto(self.server.notebook_url(name, port))
        self.wait_kernel(timeout)
        return self

    def wait_kernel(self, timeout: float = 60) -> None:
        """Until the notebook's kernel is connected and idle (not merely "idle" shown)."""
        self.page.wait_for_function(_KERNEL_READY, timeout=timeout * 1000, polling=100)

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)

    def prompt_text(self, index: int) -> str:
        return str(self.cell(index).locator(".jp-InputPrompt").inner_text()).strip()

    def run_cell(self, index: int, timeout: float = 30) -> None:
        """Run one cell (Ctrl+Enter) and wait until it has started or finished."""
        cell = self.cell(index)
        before = self.prompt_text(index)
        deadline = time.monotonic() + timeout
        while True:
            cell.locator(".jp-InputArea-editor").click()
            self.page.keyboard.press("Control+Enter")
            try:
                self.page.wait_for_function(
                    """([cell, before]) => {
                        const p = cell.querySelector('.jp-InputPrompt');
                        const t = p ? p.textContent.trim() : '';
                        return t !== before && t !== '[ ]:' && t !== '';
                    }""",
                    arg=[cell.element_handle(), before],
                    timeout=5000,
                    polling=50,
                )
                return
            except Exception:  # not picked up (editor not focused yet): press again
                if time.monotonic() > deadline:
                    raise

    def wait_cell_done(self, index: int, timeout: float = 30) -> str:
        """Until the cell's prompt shows an execution count; returns it."""
        cell = self.cell(index).element_handle()
        self.page.wait_for_function(
            "c => /^\\[\\d+\\]:$/.test(c.querySelector('.jp-InputPrompt').textContent.trim())",
            arg=cell,
            timeout=timeout * 1000,
            polling=50,
        )
        return self.prompt_text(index)

    def output_text(self, index: int) -> str:
        return str(self.cell(index).locator(".jp-OutputArea").inner_text())

    def widget(self, index: int, timeout: float = 30) -> Any:
        """The chat widget in a cell's output, once rendered."""
        root = self.cell(index).locator(".jp-OutputArea-output .streamchat").first
        root.wait_for(state="attached", timeout=timeout * 1000)
        return root

    def wait_path(self, root: Any, timeout: float = 30) -> str:
        """Until the widget knows its path (bridge / kernel); returns it."""
        badge = root.locator(".streamchat-path")
        self.page.wait_for_function(
            "el => el.dataset.path === 'bridge' || el.dataset.path === 'kernel'",
            arg=badge.element_handle(),
            timeout=timeout * 1000,
            polling=50,
        )
        return str(badge.get_attribute("data-path"))

    def type_prompt(self, root: Any, text: str) -> None:
        prompt = root.locator(".streamchat-prompt")
        prompt.click()
        prompt.fill(text)
        prompt.press("Enter")

    def observe(self, root: Any, index: int) -> None:
        """Start recording the token count of reply ``index`` on every change."""
        self.page.evaluate(_OBSERVE, [root.element_handle(), index])

    def samples(self, index: int) -> list[tuple[float, int, int]]:
        """``(page time ms, tokens shown, text length)`` per change seen by :meth:`observe`."""
        raw = self.page.evaluate(f"() => (window.__streamchatSamples || {{}})[{index}] || []")
        return [(float(t), int(n), int(c)) for t, n, c in raw]

    def reply(self, root: Any, index: int) -> Any:
        return root.locator(f'.streamchat-message[data-role="assistant"][data-index="{index}"]')

    def wait_status(
        self, root: Any, index: int, statuses: Sequence[str], timeout: float = 60
    ) -> str:
        message = self.reply(root, index)
        message.wait_for(state="attached", timeout=timeout * 1000)
        self.page.wait_for_function(
            "([el, want]) => want.includes(el.dataset.status)",
            arg=[message.element_handle(), list(statuses)],
            timeout=timeout * 1000,
            polling=50,
        )
        return str(message.get_attribute("data-status"))

    def tokens_shown(self, root: Any, index: int) -> int:
        value = self.reply(root, index).locator(".streamchat-content").get_attribute("data-tokens")
        return int(value) if value is not None else 0

    def save(self) -> None:
        """Save the notebook (with widget state when the settings ask for it)."""
        dirty = self.page.evaluate(_SAVE)
        if dirty:
            raise AssertionError("the notebook is still dirty after saving")
