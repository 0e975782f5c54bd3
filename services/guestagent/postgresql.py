"""PostgreSQL 15 for the guest agent: initdb with SCRAM-SHA-256 client
auth, the server on 127.0.0.1, the agent's own superuser `nimbus_admin`
(there is no `postgres` role until root is enabled), every database closed
to PUBLIC so only granted users connect."""

from __future__ import annotations

import os

from nimbus.database.v1 import database_pb2 as D
from nimbus.services.guestagent.datastore import Datastore, DatastoreError, chown, privileged, quote_literal, run

BIN = os.environ.get("NIMBUS_POSTGRES_BIN", "/usr/lib/postgresql/15/bin")
ADMIN = "nimbus_admin"
SYSTEM_DATABASES = ("postgres", "template0", "template1")


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgreSQL(Datastore):
    manager = "postgresql"
    root_user = "postgres"
    default_port = 5432

    async def initialise(self, admin_password: str) -> None:
        pwfile = os.path.join(self.root, "initdb.pw")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(admin_password + "\n")
        chown(pwfile)
        try:
            # -N: no fsync during initdb (the server itself keeps fsync on).
            await run(privileged([os.path.join(BIN, "initdb"), "-D", self.data, "-U", ADMIN,
                                  "-A", "scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                                  "--locale=C", "-N"]), timeout=120)
        finally:
            os.unlink(pwfile)

    def server_argv(self) -> list[str]:
        return [os.path.join(BIN, "postgres"), "-D", self.data, "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.rundir}"]

    async def sql(self, statement: str, database: str = "postgres") -> list[list[str]]:
        out = await run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                         f"host=127.0.0.1 port={self.port} user={ADMIN} dbname={database} "
                         "connect_timeout=5", "-c", statement],
                        env={"PGPASSWORD": self.admin_password()})
        return [line.split("\t") for line in out.splitlines() if line]

    async def ping(self) -> bool:
        try:
            await run([os.path.join(BIN, "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                       str(self.port), "-t", "1"], timeout=5)
            return True
        except DatastoreError:
            return False

    async def databases(self) -> list[str]:
        rows = await self.sql("SELECT datname FROM pg_database WHERE NOT datistemplate "
                              "ORDER BY datname")
        return [r[0] for r in rows if r[0] not in SYSTEM_DATABASES]

    async def create_databases(self, databases) -> None:
        have = set(await self.databases())
        for db in databases:
            if db.name not in have:
                await self.sql(f"CREATE DATABASE {ident(db.name)}")
                await self.sql(f"REVOKE CONNECT, TEMPORARY ON DATABASE {ident(db.name)} FROM PUBLIC")

    async def delete_database(self, name: str) -> None:
        if name not in await self.databases():
            raise DatastoreError(f"database {name!r} does not exist", "NOT_FOUND")
        await self.sql(f"DROP DATABASE {ident(name)} WITH (FORCE)")

    async def list_databases(self) -> list[D.DatabaseSpec]:
        return [D.DatabaseSpec(name=n) for n in await self.databases()]

    async def roles(self) -> list[str]:
        rows = await self.sql("SELECT rolname FROM pg_roles WHERE rolcanlogin ORDER BY rolname")
        return [r[0] for r in rows if r[0] not in (ADMIN, self.root_user)]

    async def create_users(self, users) -> None:
        have = set(await self.roles())
        for user in users:
            if user.name in have:
                await self.sql(f"ALTER ROLE {ident(user.name)} LOGIN PASSWORD {quote_literal(user.verifier)}")
            else:
                await self.sql(f"CREATE ROLE {ident(user.name)} LOGIN PASSWORD {quote_literal(user.verifier)}")
            await self.grant(user.name, "", list(user.databases))

    async def delete_user(self, name: str, host: str) -> None:
        if name not in await self.roles():
            raise DatastoreError(f"user {name!r} does not exist", "NOT_FOUND")
        for db in await self.databases():
            await self.sql(f"DROP OWNED BY {ident(name)}", database=db)
        await self.sql(f"DROP OWNED BY {ident(name)}")
        await self.sql(f"DROP ROLE {ident(name)}")

    async def list_users(self) -> list[D.UserSpec]:
        rows = await self.sql(
            "SELECT r.rolname, d.datname FROM pg_roles r CROSS JOIN pg_database d "
            "WHERE r.rolcanlogin AND NOT d.datistemplate "
            "AND has_database_privilege(r.rolname, d.datname, 'CONNECT') ORDER BY 1, 2")
        access: dict[str, list[str]] = {name: [] for name in await self.roles()}
        for role, db in rows:
            if role in access and db not in SYSTEM_DATABASES:
                access[role].append(db)
        return [D.UserSpec(name=n, databases=dbs) for n, dbs in access.items()]

    async def _check(self, user: str, databases: list[str]) -> None:
        if user not in await self.roles():
            raise DatastoreError(f"user {user!r} does not exist", "NOT_FOUND")
        missing = set(databases) - set(await self.databases())
        if missing:
            raise DatastoreError(f"database {sorted(missing)[0]!r} does not exist", "NOT_FOUND")

    async def grant(self, user: str, host: str, databases: list[str]) -> None:
        await self._check(user, databases)
        for db in databases:
            await self.sql(f"GRANT ALL PRIVILEGES ON DATABASE {ident(db)} TO {ident(user)}")
            # PostgreSQL 15 no longer lets everyone create in `public`.
            await self.sql(f"GRANT ALL ON SCHEMA public TO {ident(user)}", database=db)

    async def revoke(self, user: str, host: str, database: str) -> None:
        await self._check(user, [database])
        await self.sql(f"REVOKE ALL ON SCHEMA public FROM {ident(user)}", database=database)
        await self.sql(f"REVOKE ALL PRIVILEGES ON DATABASE {ident(database)} FROM {ident(user)}")

    async def enable_root(self, root) -> None:
        exists = await self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = {quote_literal(self.root_user)}")
        verb = "ALTER" if exists else "CREATE"
        await self.sql(f"{verb} ROLE {ident(self.root_user)} SUPERUSER LOGIN "
                       f"PASSWORD {quote_literal(root.verifier)}")

    async def root_enabled(self) -> bool:
        return bool(await self.sql(
            f"SELECT 1 FROM pg_roles WHERE rolname = {quote_literal(self.root_user)} AND rolcanlogin"))
