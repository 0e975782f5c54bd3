"""PostgreSQL 15 for the guest agent: initdb with SCRAM-SHA-256 client
auth, the server on 127.0.0.1, the agent's own superuser `nimbus_admin`
(there is no `postgres` role until root is enabled), every database closed
to PUBLIC so only granted users connect.

With NIMBUS_DATASTORE_TEMPLATES set (the local guests of the test driver
share one per host; a guest image could ship one), initdb runs once into a
template that every new instance copies (initdb was half of a create's
CPU). A copy starts with the template's admin password, which `secure`
replaces with the instance's own before anything else happens. Copies
share the template's system identifier (it matters for physical
replication only).

An empty prepare (a warm-pool guest's) also makes a spare database,
`nimbus_spare`, closed to PUBLIC; the first database a later prepare asks
for is that one renamed (a catalog update) instead of a CREATE DATABASE
(a copy of template1 written to the WAL: 0.17 s of the server's CPU, most
of what a claim cost). It is hidden from the API's lists and left out of
backups."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import secrets
import shutil

from nimbus.database.v1 import database_pb2 as D
from nimbus.services.guestagent.datastore import (REPLICATION_PREFIX, Datastore, DatastoreError, chown,
                                                  privileged, quote_literal, run)
from nimbus.verifiers import scram_sha256

BIN = os.environ.get("NIMBUS_POSTGRES_BIN", "/usr/lib/postgresql/15/bin")
ADMIN = "nimbus_admin"
SPARE = "nimbus_spare"
SYSTEM_DATABASES = ("postgres", "template0", "template1", SPARE)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgreSQL(Datastore):
    manager = "postgresql"
    root_user = "postgres"
    default_port = 5432

    async def initdb(self, data: str, password: str, scratch: str) -> None:
        pwfile = os.path.join(scratch, "initdb.pw")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        chown(pwfile)
        try:
            # -N: no fsync during initdb (the server itself keeps fsync on).
            await run(privileged([os.path.join(BIN, "initdb"), "-D", data, "-U", ADMIN,
                                  "-A", "scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                                  "--locale=C", "-N"]), timeout=120)
        finally:
            os.unlink(pwfile)

    @property
    def _bootstrap_path(self) -> str:
        return os.path.join(self.root, "bootstrap.pw")

    async def initialise(self, admin_password: str) -> None:
        templates = os.environ.get("NIMBUS_DATASTORE_TEMPLATES")
        if not templates:
            await self.initdb(self.data, admin_password, self.root)
            return
        template, password = await self._template(templates)
        fd = os.open(self._bootstrap_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)
        await run(["cp", "-a", os.path.join(template, "."), self.data], timeout=120)
        os.chmod(self.data, 0o700)   # PostgreSQL refuses a data directory others can read

    async def _template(self, templates: str) -> tuple[str, str]:
        """The host's initdb'd template (made once, under a lock) and its password."""
        os.makedirs(templates, mode=0o711, exist_ok=True)
        base = os.path.join(templates, f"postgresql-{os.path.basename(os.path.dirname(BIN))}")
        lock = open(base + ".lock", "w")
        try:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            if not os.path.exists(os.path.join(base, "data", "PG_VERSION")):
                scratch = base + ".new"
                shutil.rmtree(scratch, ignore_errors=True)
                os.makedirs(scratch, mode=0o711)
                chown(scratch)   # initdb (the datastore user) makes data/ in it
                fd = os.open(os.path.join(scratch, "admin.pw"), os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(24))
                with open(os.path.join(scratch, "admin.pw")) as f:
                    password = f.read()
                await self.initdb(os.path.join(scratch, "data"), password, scratch)
                shutil.rmtree(base, ignore_errors=True)
                os.replace(scratch, base)
            with open(os.path.join(base, "admin.pw")) as f:
                return os.path.join(base, "data"), f.read()
        finally:
            lock.close()

    def _connect_password(self) -> str:
        """The template's until `secure` replaced it, then the instance's own."""
        try:
            with open(self._bootstrap_path) as f:
                return f.read().strip()
        except FileNotFoundError:
            return self.admin_password()

    async def secure(self, admin_password: str) -> None:
        if os.path.exists(self._bootstrap_path):
            # A verifier, not the password, goes on the command line.
            await self.sql(f"ALTER ROLE {ADMIN} PASSWORD {quote_literal(scram_sha256(admin_password))}")
            os.unlink(self._bootstrap_path)

    def server_argv(self) -> list[str]:
        return [os.path.join(BIN, "postgres"), "-D", self.data, "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.rundir}",
                # Segments in the data dir, not /dev/shm: a killed server leaves none behind.
                "-c", "dynamic_shared_memory_type=mmap",
                # WAL kept for replicas: two pg_basebackups at once (replica_count 2)
                # lost the segment their stream was about to read without it.
                "-c", "wal_keep_size=64MB"]

    async def sql(self, *statements: str, database: str = "postgres") -> list[list[str]]:
        """Statements (or psql meta-commands such as \\c db, or queries ending
        in \\gexec) in one session, each on its own (CREATE DATABASE cannot
        run in a transaction block). The script goes on stdin: a client
        process costs about as much as the statements (5 of them made a
        claimed warm-pool guest's databases and users), and a verifier on
        the command line would be in every process listing."""
        if not statements:
            return []
        argv = ["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-f", "-",
                f"host={self._host} port={self.port} user={ADMIN} dbname={database} connect_timeout=5"]
        script = "".join(s + ("\n" if s.startswith("\\") or s.endswith("\\gexec") else ";\n")
                         for s in statements)
        try:
            out = await run(argv, env={"PGPASSWORD": self._connect_password()}, stdin=script.encode())
        except DatastoreError as exc:
            raise DatastoreError(re.sub(r"psql:<stdin>:\d+: ", "", str(exc)), exc.code) from None
        return [line.split("\t") for line in out.splitlines() if line]

    @property
    def _host(self) -> str:
        """A replica's copy carries its source's admin password: there the
        agent uses its own unix socket (trusted for nimbus_admin alone)."""
        return self.rundir if self.is_replica else "127.0.0.1"

    def ready(self) -> bool:
        """postmaster.pid's status line reads 'ready' ('standby' on a
        replica) once it accepts connections."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                lines = f.read().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() in ("ready", "standby")

    async def ping(self) -> bool:
        try:
            await self.sql("SELECT 1")
            return True
        except DatastoreError:
            return False

    async def databases(self) -> list[str]:
        rows = await self.sql("SELECT datname FROM pg_database WHERE NOT datistemplate "
                              "ORDER BY datname")
        return [r[0] for r in rows if r[0] not in SYSTEM_DATABASES]

    @staticmethod
    def _creating(databases) -> list[str]:
        """Each database not there yet, made and closed to PUBLIC (one \\gexec
        query each: no round trip to learn which exist)."""
        return [f"SELECT {quote_literal(f'CREATE DATABASE {ident(db.name)}')}, "
                f"{quote_literal(f'REVOKE CONNECT, TEMPORARY ON DATABASE {ident(db.name)} FROM PUBLIC')} "
                f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {quote_literal(db.name)}) \\gexec"
                for db in databases]

    async def create_databases(self, databases) -> None:
        await self.sql(*self._creating(databases))

    async def delete_database(self, name: str) -> None:
        if name not in await self.databases():
            raise DatastoreError(f"database {name!r} does not exist", "NOT_FOUND")
        await self.sql(f"DROP DATABASE {ident(name)} WITH (FORCE)")

    async def list_databases(self) -> list[D.DatabaseSpec]:
        return [D.DatabaseSpec(name=n) for n in await self.databases()]

    async def roles(self) -> list[str]:
        rows = await self.sql("SELECT rolname FROM pg_roles WHERE rolcanlogin ORDER BY rolname")
        return [r[0] for r in rows if r[0] not in (ADMIN, self.root_user)
                and not r[0].startswith(REPLICATION_PREFIX)]

    def _creating_users(self, users) -> list[str]:
        """CREATE ROLE, or ALTER for a tenant's login role that exists (never
        the admin, root or a replication account: CREATE fails on those)."""
        out = []
        for user in users:
            role = f"ROLE {ident(user.name)} LOGIN PASSWORD {quote_literal(user.verifier)}"
            out.append(f"SELECT CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = "
                       f"{quote_literal(user.name)} AND rolcanlogin AND NOT rolsuper AND NOT rolreplication) "
                       f"THEN {quote_literal('ALTER ' + role)} ELSE {quote_literal('CREATE ' + role)} END \\gexec")
            out += self._grants(user.name, list(user.databases))
        return out

    async def create_users(self, users) -> None:
        if not users:
            return
        wanted = {db for user in users for db in user.databases}
        missing = wanted - set(await self.databases()) if wanted else set()
        if missing:
            raise DatastoreError(f"database {sorted(missing)[0]!r} does not exist", "NOT_FOUND")
        await self.sql(*self._creating_users(users))

    async def provision(self, databases, users) -> None:
        """Prepare's databases and users in one psql session; the first
        database is the spare renamed when there is one."""
        statements = []
        if databases:
            first = databases[0].name
            statements.append(
                f"SELECT {quote_literal(f'ALTER DATABASE {ident(SPARE)} RENAME TO {ident(first)}')} "
                f"WHERE EXISTS (SELECT FROM pg_database WHERE datname = {quote_literal(SPARE)}) "
                f"AND NOT EXISTS (SELECT FROM pg_database WHERE datname = {quote_literal(first)}) \\gexec")
        await self.sql(*statements, *self._creating(databases), *self._creating_users(users))

    async def prepare_ahead(self) -> None:
        await self.sql(*self._creating([D.DatabaseSpec(name=SPARE)]))

    @staticmethod
    def _grants(user: str, databases: list[str]) -> list[str]:
        out = []
        for db in databases:
            # PostgreSQL 15 no longer lets everyone create in `public`.
            out += [f"GRANT ALL PRIVILEGES ON DATABASE {ident(db)} TO {ident(user)}",
                    f"\\c {ident(db)}", f"GRANT ALL ON SCHEMA public TO {ident(user)}"]
        return out

    async def delete_user(self, name: str, host: str) -> None:
        if name not in await self.roles():
            raise DatastoreError(f"user {name!r} does not exist", "NOT_FOUND")
        statements = []
        for db in await self.databases():
            statements += [f"\\c {ident(db)}", f"DROP OWNED BY {ident(name)}"]
        await self.sql(*statements, "\\c postgres", f"DROP OWNED BY {ident(name)}",
                       f"DROP ROLE {ident(name)}")

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
        await self.sql(*self._grants(user, databases))

    async def revoke(self, user: str, host: str, database: str) -> None:
        await self._check(user, [database])
        await self.sql(f"REVOKE ALL PRIVILEGES ON DATABASE {ident(database)} FROM {ident(user)}",
                       f"\\c {ident(database)}", f"REVOKE ALL ON SCHEMA public FROM {ident(user)}")

    async def enable_root(self, root) -> None:
        exists = await self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = {quote_literal(self.root_user)}")
        verb = "ALTER" if exists else "CREATE"
        await self.sql(f"{verb} ROLE {ident(self.root_user)} SUPERUSER LOGIN "
                       f"PASSWORD {quote_literal(root.verifier)}")

    async def root_enabled(self) -> bool:
        return bool(await self.sql(
            f"SELECT 1 FROM pg_roles WHERE rolname = {quote_literal(self.root_user)} AND rolcanlogin"))

    # ---- backups (backup.py) -----------------------------------------------

    def _dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={ADMIN} dbname=postgres connect_timeout=5"

    async def backup_command(self) -> tuple[list[str], dict, str]:
        return ([os.path.join(BIN, "pg_dumpall"), "-d", self._dsn(), f"--exclude-database={SPARE}"],
                {**os.environ, "PGPASSWORD": self._connect_password()}, "pg_dumpall")

    def restore_command(self) -> tuple[list[str], dict]:
        return (["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self._dsn()],
                {**os.environ, "PGPASSWORD": self._connect_password()})

    def restore_keep(self):
        """Drop the roles section's statements about nimbus_admin and
        postgres (this instance has its own); from the first \\connect on,
        the databases' own contents pass untouched."""
        own = re.compile(rb'^(CREATE|ALTER|COMMENT ON) ROLE "?(%s|%s|%s\w*)"?[ ;]'
                         % (ADMIN.encode(), self.root_user.encode(), REPLICATION_PREFIX.encode()))
        in_roles = True

        def keep(line: bytes) -> bool:
            nonlocal in_roles
            if in_roles and line.startswith(b"\\connect"):
                in_roles = False
            return not (in_roles and own.match(line))
        return keep

    # ---- replication: physical streaming ------------------------------------

    async def enable_replication(self, account) -> None:
        exists = await self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = {quote_literal(account.name)}")
        verb = "ALTER" if exists else "CREATE"
        # initdb's pg_hba.conf already lets 127.0.0.1 connect for replication (SCRAM).
        await self.sql(f"{verb} ROLE {ident(account.name)} REPLICATION LOGIN "
                       f"PASSWORD {quote_literal(account.verifier)}")

    @property
    def _hba(self) -> str:
        return os.path.join(self.data, "pg_hba.conf")

    async def clone_replica(self, source, admin_password: str) -> None:
        """pg_basebackup -R: the source's files and a standby.signal plus
        primary_conninfo, so the server starts as a hot standby streaming WAL."""
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            await run(privileged([os.path.join(BIN, "pg_basebackup"), "-d",
                                  f"host={source.host} port={source.port} user={source.user}",
                                  "-D", self.data, "-X", "stream", "-R", "-c", "fast"]),
                      env={"PGPASSWORD": source.password}, timeout=600)
            os.chmod(self.data, 0o700)
            with open(self._hba) as f:
                rules = f.read()
            with open(self._hba, "w") as f:
                f.write(f"local all {ADMIN} trust\n{rules}")
            open(self.replica_marker, "w").close()
        self.choose_port()
        await self._start_on_a_free_port()

    async def promote(self, _cmd=None) -> None:
        if not self.is_replica:
            return
        await self.sql("SELECT pg_promote(true, 60)")
        # Its own admin password now, and no copy of the replication one.
        await self.sql(f"ALTER ROLE {ADMIN} PASSWORD {quote_literal(scram_sha256(self.admin_password()))}",
                       "ALTER SYSTEM RESET primary_conninfo")
        with open(self._hba) as f:
            rules = f.read().split("\n", 1)[1]
        with open(self._hba, "w") as f:
            f.write(rules)
        os.unlink(self.replica_marker)
        await self.sql("SELECT pg_reload_conf()")
