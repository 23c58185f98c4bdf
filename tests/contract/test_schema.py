from __future__ import annotations

from graphql import build_schema as parse_sdl

from service.graphql import export_sdl
from service.graphql.contract import breaking_changes
from service.resources import schema_dir


def test_committed_schema_is_what_the_code_exports() -> None:
    committed = (schema_dir() / "schema.graphql").read_text(encoding="utf-8")
    assert committed == export_sdl(), "run `newsgraph export-schema -o schema/schema.graphql`"


def test_no_breaking_change_since_the_released_schema() -> None:
    released = (schema_dir() / "released.graphql").read_text(encoding="utf-8")
    assert breaking_changes(released, export_sdl()) == []


def test_removing_a_field_breaks_unless_it_was_deprecated_first() -> None:
    before = 'type Query { a: Int b: Int @deprecated(reason: "use a") c: String }'
    after = "type Query { a: Int c: Int }"
    assert breaking_changes(before, after) == ["Field Query.c changed type from String to Int."]
    assert breaking_changes(before, "type Query { a: Int c: String }") == []
    assert breaking_changes(before, "type Query { b: Int c: String }") == [
        "Field Query.a was removed."
    ]


def test_every_type_field_and_argument_is_described() -> None:
    schema = parse_sdl(export_sdl())
    missing = []
    for name, named in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not named.description:
            missing.append(name)
        for field_name, field in getattr(named, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for arg_name, arg in getattr(field, "args", {}).items():
                if not arg.description:
                    missing.append(f"{name}.{field_name}({arg_name})")
    assert missing == []
