"""Fixtures: a real ferry-server (the workspace's binary) on a free port, with tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "product_catalog"
ADMIN_TOKEN = "python-test-bootstrap-admin-token-0123456789"


def _server_binary() -> Path:
    explicit = os.environ.get("FERRY_SERVER_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "ferry-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _policies_binding(policy_dir: Path, directories: list[Path]) -> Path:
    """The shipped policies plus lines binding every owner team to `directories` as sources."""
    policy_dir.mkdir()
    shipped = REPO / "policies"
    (policy_dir / "model.conf").write_text((shipped / "model.conf").read_text())
    bindings = "".join(f"p, owner, source:file://{d}/*, read_source, never\n" for d in directories)
    (policy_dir / "policy.csv").write_text((shipped / "policy.csv").read_text() + "\n" + bindings)
    return policy_dir


@dataclass
class Server:
    endpoint: str
    tokens: dict[str, str]


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    binary = _server_binary()
    if not binary.exists():
        pytest.fail(f"{binary} not found: build it with `cargo build --bin ferry-server` or set FERRY_SERVER_BIN")
    port = _free_port()
    sources = [tmp_path.resolve(), (EXAMPLES / "data").resolve()]
    policy_dir = _policies_binding(tmp_path / "policies", sources)
    # The server rejects unknown FERRY_* variables, so pass only its own (not FERRY_SERVER_BIN).
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FERRY_")},
        "FERRY_LISTEN": f"127.0.0.1:{port}",
        "FERRY_DATA_DIR": str(tmp_path / "data"),
        "FERRY_AUTH__BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "FERRY_LOG_LEVEL": "warn",
        # The tests' sources: the shipped extracts and files under pytest's temporary directory.
        "FERRY_SOURCES__FILE_ROOTS": f'["{sources[0]}", "{sources[1]}"]',
        "FERRY_POLICY_DIR": str(policy_dir),
        # Scheduled feeds and freshness checks every second, so a feed test waits seconds.
        "FERRY_SCHEDULER__TICK_SECS": "1",
    }
    tokens = {"admin:platform": ADMIN_TOKEN}
    for principal in ["team:catalog", "team:a", "team:b"]:
        created = subprocess.run(
            [binary, "token", "create", "--principal", principal],
            env=env,
            capture_output=True,
            text=True,
        )
        if created.returncode != 0:
            raise RuntimeError(f"ferry-server token create failed: {created.stderr}")
        tokens[principal] = created.stdout.strip()
    process = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"ferry-server exited: {process.stderr.read() if process.stderr else ''!r}")
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("ferry-server did not start within 30 s")
    try:
        yield Server(endpoint=f"127.0.0.1:{port}", tokens=tokens)
    finally:
        process.terminate()
        process.wait(timeout=30)
