from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, Settings, default_data_dir


def test_defaults_need_no_configuration() -> None:
    settings = Settings.from_environ({})
    assert settings.database_url is None
    assert settings.env == "development"
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.auth == "off"
    assert settings.graphiql is True
    assert (settings.default_page_size, settings.max_page_size) == (20, 100)


def test_environment_values_are_parsed() -> None:
    settings = Settings.from_environ(
        {
            "DATABASE_URL": "postgresql://u@db:5432/news",
            "NEWSGRAPH_ENV": "production",
            "NEWSGRAPH_PORT": "9000",
            "NEWSGRAPH_DATA_DIR": "/srv/ng",
            "NEWSGRAPH_MAX_PAGE_SIZE": "50",
        }
    )
    assert settings.database_url == "postgresql://u@db:5432/news"
    assert settings.port == 9000
    assert settings.data_dir == Path("/srv/ng")
    assert settings.max_page_size == 50
    assert settings.graphiql is False  # off by default in production


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (None, "process"),
        ("process", "process"),
        ("thread", "thread"),
        ("off", "off"),
        # Its values before the indexer process keep their meaning.
        ("true", "thread"),
        ("false", "off"),
    ],
)
def test_the_related_indexer_runs_in_a_process_of_its_own_unless_asked(
    value: str | None, mode: str
) -> None:
    env = {} if value is None else {"NEWSGRAPH_RELATED_INDEXER": value}
    assert Settings.from_environ(env).related_indexer == mode


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEWSGRAPH_PORT": "eighty"}, "NEWSGRAPH_PORT must be an integer"),
        ({"NEWSGRAPH_WORKERS": "0"}, "NEWSGRAPH_WORKERS must be at least 1"),
        ({"NEWSGRAPH_ENV": "staging"}, "NEWSGRAPH_ENV must be one of"),
        ({"NEWSGRAPH_GRAPHIQL": "maybe"}, "NEWSGRAPH_GRAPHIQL must be true or false"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be a postgresql:// URL"),
        ({"NEWSGRAPH_RELATED_INDEXER": "sometimes"}, "NEWSGRAPH_RELATED_INDEXER must be one of"),
        ({"NEWSGRAPH_DEFAULT_PAGE_SIZE": "200"}, "must not exceed NEWSGRAPH_MAX_PAGE_SIZE"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_environ(env)


def test_data_dir_as_root_avoids_the_private_home() -> None:
    assert default_data_dir({"HOME": "/root"}, is_root=True) == Path("/var/lib/newsgraph")
    assert default_data_dir({"HOME": "/home/ana"}, is_root=False) == Path(
        "/home/ana/.local/share/newsgraph"
    )
    assert default_data_dir({"XDG_DATA_HOME": "/x"}, is_root=False) == Path("/x/newsgraph")


def test_every_setting_is_documented_in_the_readme() -> None:
    read: list[str] = []

    class Recording(dict[str, str]):
        def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
            read.append(key)
            return super().get(key, default)

    Settings.from_environ(Recording())
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [name for name in dict.fromkeys(read) if f"`{name}`" not in readme]
    assert missing == [], "add these to the README's Configuration table"
