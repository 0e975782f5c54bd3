"""What each datastore accepts as database and user names (Trove's
guestagent/db/models.py rules), and the names its guest agent reserves."""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Rules:
    max_database: int
    max_user: int
    name: re.Pattern
    reserved_users: frozenset[str]
    reserved_databases: frozenset[str]
    has_hosts: bool


RULES = {
    "postgresql": Rules(63, 63, re.compile(r"[A-Za-z_][A-Za-z0-9_$-]*"),
                        frozenset({"postgres", "nimbus_admin"}),
                        frozenset({"postgres", "template0", "template1", "nimbus_spare"}), False),
    "mariadb": Rules(64, 80, re.compile(r"[A-Za-z0-9_-]+"),
                     frozenset({"root", "nimbus_admin", "mariadb.sys", "mysql"}),
                     frozenset({"mysql", "information_schema", "performance_schema", "sys", "lost+found"}),
                     True),
}
MIN_PASSWORD = 8
MAX_PASSWORD = 128
HOST = re.compile(r"[A-Za-z0-9.%_:-]{1,255}")


def _name_problem(manager: str, kind: str, name: str, limit: int, reserved) -> str | None:
    rules = RULES[manager]
    if not name:
        return f"a {kind} name is required"
    if len(name) > limit:
        return f"at most {limit} characters for {manager}"
    if not rules.name.fullmatch(name):
        return f"{name!r} is not a valid {manager} {kind} name ({rules.name.pattern})"
    if name in reserved:
        return f"{name!r} is reserved by {manager}"
    return None


def database_problem(manager: str, name: str) -> str | None:
    rules = RULES[manager]
    return _name_problem(manager, "database", name, rules.max_database, rules.reserved_databases)


def user_problem(manager: str, name: str, host: str = "") -> str | None:
    rules = RULES[manager]
    problem = _name_problem(manager, "user", name, rules.max_user, rules.reserved_users)
    if problem:
        return problem
    if host and not rules.has_hosts:
        return f"{manager} users have no host"
    if host and not HOST.fullmatch(host):
        return f"{host!r} is not a valid host"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    return None


ROOT_USERS = {"postgresql": "postgres", "mariadb": "root"}
