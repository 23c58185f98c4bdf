"""The wheel carries what `newsgraph serve|migrate` need outside a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from service.resources import migrations_dir, operations_dir

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_migrations_contract_and_demo_data(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("newsgraph-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {
        f"service/migrations/versions/{p.name}"
        for p in (migrations_dir() / "versions").glob("*.py")
    }
    operations = {
        f"service/contract/operations/{p.name}" for p in operations_dir().glob("*.graphql")
    }
    expected = {
        "service/migrations/env.py",
        "service/contract/schema.graphql",
        "service/demo/articles.jsonl",
        "service/demo/entities.jsonl",
        *migrations,
        *operations,
    }
    assert expected <= names
    assert migrations
    assert operations
