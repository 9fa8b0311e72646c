"""The dialect registry and what every dialect owns: lookups, error tables, retry policies."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from chatkit_kit.errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    DeadlockError,
)
from chatkit_kit.stores import _schema
from chatkit_kit.stores.sql.dialects import (
    MySQLDialect,
    PostgreSQLDialect,
    SQLiteDialect,
    dialect_for_backend,
    dialect_for_url,
    dialect_named,
    registered_dialects,
)
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore


def test_every_database_has_one_registered_dialect() -> None:
    names = {d.name for d in registered_dialects()}
    assert names >= {"postgresql", "sqlite", "mysql"}
    assert dialect_for_backend("mariadb") is dialect_for_backend("mysql")
    assert isinstance(dialect_for_url("postgres://u@h/db"), PostgreSQLDialect)
    assert isinstance(dialect_named("sqlite"), SQLiteDialect)


def test_an_unknown_dialect_is_a_configuration_error() -> None:
    with pytest.raises(DatabaseConfigurationError, match="no SQL dialect named 'oracle'"):
        _schema.Names.create("oracle", None, "chatkit_")
    with pytest.raises(DatabaseConfigurationError, match="support MySQL/MariaDB, PostgreSQL"):
        dialect_for_backend("oracle")
    engine: Any = SimpleNamespace(url=make_url("oracle://u@h/db"))
    with pytest.raises(DatabaseConfigurationError, match="'oracle' engines"):
        SQLAlchemyStore(engine)


class _Coded(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("x")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("57014", DatabaseTimeoutError),  # exact
        ("08006", DatabaseUnavailableError),  # class 08*
        ("28P01", DatabaseConfigurationError),  # class 28*
        ("40P01", DeadlockError),  # deadlock_detected
        ("40001", DeadlockError),  # serialization_failure
        ("40002", DatabaseError),  # not in the table
    ],
)
def test_the_most_specific_entry_of_the_error_table_wins(
    sqlstate: str, kind: type[DatabaseError]
) -> None:
    error = PostgreSQLDialect().translate(_Coded(sqlstate))
    assert type(error) is kind and error.code == sqlstate


def test_a_more_specific_code_beats_its_class() -> None:
    class Narrow(PostgreSQLDialect):
        errors = {
            **PostgreSQLDialect.errors,
            "08P01": DatabaseConfigurationError,
            "0*": DatabaseError,
        }

    assert Narrow().classify(_Coded("08P01")) is DatabaseConfigurationError
    assert Narrow().classify(_Coded("08006")) is DatabaseUnavailableError
    assert Narrow().classify(_Coded("0A000")) is DatabaseError


def test_mysql_retries_deadlocks_and_lock_waits_only() -> None:
    mysql = MySQLDialect()
    deadlock = mysql.translate(Exception(1213, "Deadlock found"))
    assert isinstance(deadlock, DeadlockError) and isinstance(deadlock, DatabaseTimeoutError)
    assert mysql.attempts(deadlock) == 5
    assert mysql.attempts(mysql.translate(Exception(1205, "Lock wait timeout"))) == 2
    assert mysql.attempts(mysql.translate(Exception(1969, "max_statement_time"))) == 1
    assert PostgreSQLDialect().attempts(deadlock) == 1  # "1213" is no SQLSTATE
    for sqlstate in ("40P01", "40001"):
        assert PostgreSQLDialect().attempts(PostgreSQLDialect().translate(_Coded(sqlstate))) == 5


def test_capabilities_differ_by_dialect_not_by_name() -> None:
    mysql, pg, sqlite = MySQLDialect(), PostgreSQLDialect(), SQLiteDialect()
    assert (pg.returning, sqlite.returning, mysql.returning) == (True, True, False)
    assert mysql.upsert_style == "on_duplicate_key" and pg.upsert_style == "on_conflict"
    assert (pg.transactional_ddl, mysql.transactional_ddl) == (True, False)
    assert set(pg.migrations) == set(sqlite.migrations) == set(mysql.migrations)
    assert sorted(pg.migrations) == [m.version for m in _schema.MIGRATIONS]
