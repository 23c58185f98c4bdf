"""`newsgraph apikey create|list|revoke`: manage the API keys partners and apps send.

    newsgraph apikey create --name N --role reader|ingest|admin [--sources d1,d2]
    newsgraph apikey list
    newsgraph apikey revoke ID

`create` prints the new key on stdout, once: only its keyed hash (HMAC-SHA-256 under
`NEWSGRAPH_KEY_SECRET`) is stored, so it cannot be shown again; the service must run with the
same secret. An `ingest` key needs `--sources`, the domains it may write (their subdomains
included). `revoke` takes effect within `NEWSGRAPH_KEY_CACHE_TTL` seconds (default 5) on
every running process.

Exit status: 0 done; 1 no key with that id; 2 a usage or configuration problem; 3 the
database failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import asyncpg

from service.auth import Role, generate_token, hash_token, server_secret, shown_prefix
from service.config import Settings
from service.db.api_keys import ApiKeyRecord, create_api_key, list_api_keys, revoke_api_key
from service.db.pool import open_database
from service.errors import ServiceUnavailable

__all__ = ["add_apikey_parser", "cmd_apikey", "parse_sources"]

log = logging.getLogger("newsgraph.apikey")

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_DATABASE = 0, 1, 2, 3
_DOMAIN_RE: Final = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def parse_sources(text: str) -> tuple[str, ...]:
    """`a.com, www.B.no` → ("a.com", "b.no"); a value that is not a domain is an error."""
    domains = []
    for part in text.split(","):
        domain = part.strip().lower().removeprefix("www.")
        if not domain:
            continue
        if not _DOMAIN_RE.fullmatch(domain):
            raise argparse.ArgumentTypeError(f"not a domain: {part.strip()!r}")
        domains.append(domain)
    return tuple(dict.fromkeys(domains))


def add_apikey_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `apikey` command (create, list, revoke) to `newsgraph`'s subcommands."""
    parser = commands.add_parser(
        "apikey",
        help="create, list or revoke API keys",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest="apikey_command", required=True)
    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument(
        "--sources",
        type=parse_sources,
        default=(),
        metavar="D1,D2",
        help="domains an ingest key may write (required for --role ingest)",
    )
    actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id", type=int, help="the key's id (see `apikey list`)")
    parser.set_defaults(handler=cmd_apikey)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def format_keys(keys: Sequence[ApiKeyRecord]) -> str:
    """A table of keys: id, name, role, prefix, sources, created, last used, revoked."""
    header = ("ID", "NAME", "ROLE", "PREFIX", "SOURCES", "CREATED", "LAST USED", "REVOKED")
    rows = [
        (
            str(k.id),
            k.name,
            k.role,
            k.prefix + "…",
            ",".join(k.sources) or "-",
            _when(k.created_at),
            _when(k.last_used_at),
            _when(k.revoked_at),
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


async def _run(args: argparse.Namespace, settings: Settings, secret: bytes) -> int:
    async with open_database(settings) as db:
        if args.apikey_command == "create":
            token = generate_token()
            record = await create_api_key(
                db,
                name=args.name.strip(),
                role=args.role,
                prefix=shown_prefix(token),
                key_hash=hash_token(secret, token),
                sources=args.sources,
            )
            print(token)
            sources = f"; sources {', '.join(record.sources)}" if record.sources else ""
            print(
                f"apikey: created key {record.id} {record.name!r} ({record.role}{sources}). "
                "This is the only time the key is shown: store it now.",
                file=sys.stderr,
            )
            return EXIT_OK
        if args.apikey_command == "list":
            print(format_keys(await list_api_keys(db)))
            return EXIT_OK
        revoked = await revoke_api_key(db, args.id)
        if revoked is None:
            print(f"apikey: no key has the id {args.id}", file=sys.stderr)
            return EXIT_NOT_FOUND
        print(
            f"apikey: key {revoked.id} {revoked.name!r} is revoked "
            f"(effective within {settings.key_cache_ttl:g} s on running servers)",
            file=sys.stderr,
        )
        return EXIT_OK


def cmd_apikey(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: service.cli imports this module to register the command.
    from service.cli import database_url

    if args.apikey_command == "create":
        if not args.name.strip():
            print("apikey: --name must not be empty", file=sys.stderr)
            return EXIT_USAGE
        if args.role == Role.INGEST and not args.sources:
            print(
                "apikey: an ingest key needs --sources (the domains it may write)", file=sys.stderr
            )
            return EXIT_USAGE
        if args.role != Role.INGEST and args.sources:
            print("apikey: --sources applies to ingest keys only", file=sys.stderr)
            return EXIT_USAGE
    secret = server_secret(settings)
    with database_url(settings) as dsn:
        try:
            return asyncio.run(_run(args, settings.with_database(dsn), secret))
        except (ServiceUnavailable, OSError, asyncpg.PostgresError) as exc:
            log.error("the database failed: %s", exc)
            return EXIT_DATABASE
