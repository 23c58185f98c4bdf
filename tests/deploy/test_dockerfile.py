"""The image's contract, without a Docker engine: hadolint, and the container's command run with
the container's environment as its non-root user against a real database.

The probe-contract test runs the ENTRYPOINT + CMD of the Dockerfile's runtime stage with exactly
the stage's ENV (plus DATABASE_URL, as k8s gives it), in `/` as working directory, under the
image's numeric uid:gid. What it changes: the image's venv (`/opt/newsgraph/bin` is mapped to
this venv's bin), the listening address (`--host 0.0.0.0` becomes 127.0.0.1: tests listen on
loopback only) and the port (a free one instead of the image's NEWSGRAPH_PORT).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from service.db.migrate import upgrade
from tests.deploy import tools
from tests.deploy.conftest import K8S, ROOT, Image
from tests.support import create_database, drop_database, free_port


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(tools.hadolint()), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_build_context_holds_what_the_build_copies(image: Image) -> None:
    kept = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    for copy in image.copies:
        if any(arg.startswith("--from=") for arg in copy):
            continue
        for source in copy[:-1]:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in kept, f"{source} is excluded by .dockerignore"


def _pod_spec() -> dict[str, Any]:
    """The base Deployment's pod spec (the numbers the container must live within)."""
    doc = yaml.safe_load((K8S / "base" / "deployment.yaml").read_text(encoding="utf-8"))
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def test_the_image_runs_as_the_pods_numeric_non_root_user(image: Image) -> None:
    uid, _, gid = image.user.partition(":")
    assert uid.isdigit(), "a numeric USER lets runAsNonRoot verify it without /etc/passwd"
    assert gid.isdigit()
    assert int(uid) != 0
    pod = _pod_spec()["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))


def test_the_command_is_exec_form_serve_on_all_interfaces(image: Image) -> None:
    assert image.exec_form, "shell form would make /bin/sh PID 1, and SIGTERM would not reach us"
    assert image.entrypoint == ["newsgraph"]
    assert image.cmd[0] == "serve"
    assert image.cmd[image.cmd.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    assert "--workers" not in image.cmd  # one process per container; replicas scale out
    # Nothing may need the read-only root: HOME, caches and the demo database live in /tmp.
    for name in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        assert image.env[name].startswith("/tmp"), name  # noqa: S108
    assert image.env["NEWSGRAPH_DATA_DIR"].startswith("/tmp")  # noqa: S108
    assert image.env["PYTHONDONTWRITEBYTECODE"] == "1"


@pytest_asyncio.fixture
async def probe_database(server_url: str) -> AsyncIterator[str]:
    """A migrated database, as the migration Job leaves it before the pods start."""
    name = f"newsgraph_probe_{os.getpid()}"
    url = await create_database(server_url, name)
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await drop_database(server_url, name)


def _as_user(uid: str, gid: str, python: str, env: dict[str, str]) -> list[str]:
    """A prefix that runs a command as uid:gid, or [] when we are not root."""
    if os.geteuid() != 0:
        return []  # already an unprivileged user: run as ourselves
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv(1): cannot drop to the image's user")
    base = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    # This venv may sit in a directory the image's user cannot enter (/root is 0700). Then
    # keep only the right to read and search directories, never to write: the root
    # filesystem stays as unwritable for the process as the container's.
    reader = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    for prefix in (base, [*base, *reader]):
        check = [*prefix, "--", python, "-c", "import service.cli"]
        if subprocess.run(check, env=env, cwd="/", capture_output=True, check=False).returncode:
            continue
        return [*prefix, "--"]
    pytest.skip(f"uid {uid} cannot run {python}, even allowed to read every directory")


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while True:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered 200:\n{log.read_text()}"
        time.sleep(0.2)


def test_the_container_command_serves_probes_and_stops_on_sigterm(
    image: Image, probe_database: str, tmp_path: Path
) -> None:
    # The image's environment, with its venv's bin (first on PATH) mapped to ours.
    env = dict(image.env)
    image_bin, _, rest = env["PATH"].partition(":")
    env["PATH"] = f"{Path(sys.executable).parent}:{rest}"
    port = free_port()
    env |= {"DATABASE_URL": probe_database, "NEWSGRAPH_PORT": str(port)}
    argv = [*image.entrypoint, *image.cmd]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    executable = shutil.which(argv[0], path=env["PATH"])
    assert executable is not None, f"{argv[0]} is not on the image's PATH ({image_bin})"
    argv[0] = executable
    uid, _, gid = image.user.partition(":")
    prefix = _as_user(uid, gid, sys.executable, env)

    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*prefix, *argv], env=env, cwd="/", stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/healthz", process, log, time.monotonic() + 60)
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        status = Path(f"/proc/{process.pid}/status").read_text()
        [uids] = [line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")]
        expected = uid if prefix else str(os.geteuid())
        assert set(uids) == {expected}, "the server runs as the image's user"
        assert expected != "0"

        grace = _pod_spec()["terminationGracePeriodSeconds"]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {grace} s after SIGTERM:\n{log.read_text()}")
        assert returncode == 0, log.read_text()
        # Idle, it stops at once; the grace period is for requests in flight.
        assert time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
