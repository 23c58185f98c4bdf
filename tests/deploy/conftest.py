"""What the deployment tests look at: the Dockerfile's runtime stage and the rendered overlays."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import tools

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"

# What python:3.11-slim sets before our ENV lines (the Dockerfile extends PATH).
BASE_IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}

# Each deployable combination: the two overlays, and production with the database in the
# cluster (what a team that runs its own PostgreSQL applies; k8s/README.md).
RENDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dev": ("overlays/dev", ()),
    "production": ("overlays/production", ()),
    "production+cnpg": ("overlays/production", ("components/cnpg",)),
}


@dataclass(frozen=True, slots=True)
class Image:
    """The runtime stage of the Dockerfile: what a container of the image starts with."""

    base: str
    user: str
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    exposed: list[int]
    exec_form: bool
    copies: list[list[str]] = field(default_factory=list)


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, rest = logical.partition(" ")
        yield keyword.upper(), rest.strip()
        logical = ""


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), value)


def parse_dockerfile(path: Path) -> Image:
    """The last stage's base, user, environment, command and exposed ports."""
    stages: list[list[tuple[str, str]]] = []
    args: dict[str, str] = {}
    for keyword, rest in _instructions(path.read_text(encoding="utf-8")):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
        elif keyword == "ARG":  # global ARGs, usable in FROM
            name, _, value = rest.partition("=")
            args[name] = value
    env = dict(BASE_IMAGE_ENV)
    user = "root"
    entrypoint: list[str] = []
    cmd: list[str] = []
    exposed: list[int] = []
    copies: list[list[str]] = []
    exec_form = True
    base = ""
    for keyword, rest in stages[-1]:
        if keyword == "FROM":
            base = _expand(rest.split()[0], args)
        elif keyword == "ENV":
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                env[name] = _expand(value, env)
        elif keyword == "USER":
            user = rest
        elif keyword in {"ENTRYPOINT", "CMD"}:
            try:
                argv = json.loads(rest)
            except json.JSONDecodeError:
                exec_form = False
                argv = ["/bin/sh", "-c", rest]
            if keyword == "ENTRYPOINT":
                entrypoint = argv
            else:
                cmd = argv
        elif keyword == "EXPOSE":
            exposed += [int(port.split("/")[0]) for port in rest.split()]
    for stage in stages:
        copies += [shlex.split(rest) for keyword, rest in stage if keyword == "COPY"]
    return Image(base, user, env, entrypoint, cmd, exposed, exec_form, copies)


@pytest.fixture(scope="session")
def image() -> Image:
    return parse_dockerfile(ROOT / "Dockerfile")


def render(path: str, components: tuple[str, ...], scratch: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of an overlay, with extra components through a scratch overlay."""
    target = K8S / path
    if components:
        target = scratch
        target.mkdir(parents=True, exist_ok=True)
        # What a team adds to its copy of the overlay; the namespace must cover the
        # component's objects too.
        overlay = yaml.safe_load((K8S / path / "kustomization.yaml").read_text(encoding="utf-8"))
        (target / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "namespace": overlay["namespace"],
                    # kustomize takes relative paths only
                    "resources": [os.path.relpath(K8S / path, target)],
                    "components": [os.path.relpath(K8S / c, target) for c in components],
                }
            ),
            encoding="utf-8",
        )
    result = subprocess.run(
        [str(tools.kubectl()), "kustomize", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every deployable combination, rendered once per session."""
    scratch = tmp_path_factory.mktemp("kustomize")
    return {
        name: render(path, components, scratch / name.replace("+", "-"))
        for name, (path, components) in RENDERS.items()
    }
