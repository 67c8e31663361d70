"""A real Ray cluster on loopback for the batch tests: a head node and extra worker nodes, each a
``ray start --block`` process in its own session started here, and stopped here (its whole process group,
and only that) however the test ends. (No tests in here.)

Loopback only: Ray turns 127.0.0.1 into the machine's outward address wherever it meets it (a node's own
address, the address it joins), and binds to all interfaces unless its address is 127.0.0.1. So each node
runs ``ray start`` with that one lookup answering 127.0.0.1 (:data:`_NODE`), and this process, the driver,
sets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which makes Ray's lookup answer loopback for a driver (a
setting only ``ray start`` of a worker node refuses, and no node here starts with it)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OBJECT_STORE = 200 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_NODE = ("import sys; import ray._private.services as s; "
         "s.get_node_ip_address = lambda address=None: '127.0.0.1'; "
         "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())")
DRIVER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # a driver's own address: loopback
_AUTH: dict[str, str] = {}  # token authentication with a token of this cluster's own (not ~/.ray's)


def _env() -> dict[str, str]:
    """Workers import doppel and the tests' helpers (the test doubles they load) from this tree; every node
    checks the token of this cluster (``_AUTH``: set by :func:`ray_cluster`)."""
    env = dict(os.environ)
    env.update(_AUTH)
    paths = [str(ROOT / "src"), str(ROOT / "tests")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1", "OMP_NUM_THREADS": "1"})
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # this process's driver setting is not for nodes
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-c", _NODE, "start", "--block", "--disable-usage-stats", *args],
                                env=_env(), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the node's process group, and after a short grace SIGKILL what is left (a test cluster keeps
    nothing worth a slow shutdown)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _session_pids(sid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid:  # session id: every process this node started
                    out.append(int(entry.name))
    return out


@contextlib.contextmanager
def ray_cluster(workers: int = 1, cpus: int = 1) -> Iterator[str]:
    """A head node and ``workers`` worker nodes (``cpus`` CPUs each) on 127.0.0.1; yields the head's address."""
    tmp = Path(tempfile.mkdtemp(prefix="dray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    _AUTH.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    saved = {k: os.environ.get(k) for k in (*DRIVER_ENV, *_AUTH)}
    os.environ.update({**DRIVER_ENV, **_AUTH})  # for this process, the driver (read when it imports ray)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", str(cpus), "--object-store-memory", str(OBJECT_STORE)]
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        nodes.append(_start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--include-dashboard", "false", "--temp-dir", str(tmp), *common], tmp / "head.log"))
        _wait_started(nodes[-1], tmp / "head.log")
        for k in range(workers):
            nodes.append(_start(["--address", address, *common], tmp / f"worker{k}.log"))
            _wait_started(nodes[-1], tmp / f"worker{k}.log")
        yield address
    finally:
        sessions = [p.pid for p in nodes]
        for proc in reversed(nodes):
            _stop(proc)
        for sid in sessions:  # anything of ours that outlived its node (it should not)
            for pid in _session_pids(sid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_started(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``ray start`` says the node is up (a node joins the cluster before it says so)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Ray runtime started" in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited ({proc.returncode}):\n{text[-3000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"ray start did not come up in 180 s:\n{log.read_text(errors='replace')[-3000:]}")
