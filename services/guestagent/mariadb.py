"""MariaDB 10.11 for the guest agent: mariadb-install-db (root@localhost by
unix socket only, no test database), the server on 127.0.0.1, the agent's
own account `nimbus_admin`@`localhost` with a random password; remote root
exists only once root is enabled."""

from __future__ import annotations

import os
import secrets

from nimbus.database.v1 import database_pb2 as D
from nimbus.services.guestagent import backup
from nimbus.services.guestagent.datastore import (REPLICATION_PREFIX, Datastore, DatastoreError, chown,
                                                  privileged, quote_literal, run)

ADMIN = "nimbus_admin"
SYSTEM_DATABASES = ("information_schema", "mysql", "performance_schema", "sys")
SYSTEM_USERS = (ADMIN, "root", "mariadb.sys", "mysql", "PUBLIC", "")


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def lit(value: str) -> str:
    return quote_literal(value, backslashes=True)


def account(user: str, host: str) -> str:
    return f"{lit(user)}@{lit(host or '%')}"


class MariaDB(Datastore):
    manager = "mariadb"
    root_user = "root"
    default_port = 3306

    @property
    def socket(self) -> str:
        return os.path.join(self.rundir, "mysqld.sock")

    @property
    def tmpdir(self) -> str:
        """Its own: a MariaDB starting up removes the '#sql' files it finds in
        its tmpdir, which broke other instances' bootstraps sharing /tmp."""
        path = os.path.join(self.root, "tmp")
        if not os.path.isdir(path):
            os.makedirs(path)
            chown(path)
        return path

    async def initialise(self, admin_password: str) -> None:
        argv = ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}",
                "--auth-root-authentication-method=socket", "--skip-test-db"]
        await run(privileged(argv), env={"TMPDIR": self.tmpdir}, timeout=120)

    def server_argv(self) -> list[str]:
        return ["mariadbd", "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
                f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                f"--pid-file={os.path.join(self.rundir, 'mysqld.pid')}",
                f"--tmpdir={self.tmpdir}", "--innodb-buffer-pool-size=16M",
                # A binary log for replicas to follow (GTID), a server id of its own.
                "--log-bin=mariadb-bin", f"--server-id={self.server_id}",
                *(["--read-only"] if self.is_replica else [])]

    @property
    def server_id(self) -> int:
        path = os.path.join(self.root, "server-id")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(str(secrets.randbelow(2**31 - 2) + 1))
        with open(path) as f:
            return int(f.read())

    async def sql(self, statement: str, as_root: bool = False) -> list[list[str]]:
        """On stdin: passwords and verifiers stay out of the process listing."""
        argv = ["mariadb", "--no-defaults", f"--socket={self.socket}", "--batch",
                "--skip-column-names", "--connect-timeout=5"]
        env = {}
        if as_root:
            argv.append("--user=root")   # unix_socket auth: the agent runs as root
        else:
            argv.append(f"--user={ADMIN}")
            env["MYSQL_PWD"] = self.admin_password()
        out = await run(argv, env=env, stdin=statement.encode())
        return [line.split("\t") for line in out.splitlines() if line]

    def ready(self) -> bool:
        return os.path.exists(self.socket)   # made once it accepts connections

    async def ping(self) -> bool:
        try:
            await self.sql("SELECT 1", as_root=not self.prepared_admin)
            return True
        except DatastoreError:
            return False

    @property
    def prepared_admin(self) -> bool:
        return os.path.exists(os.path.join(self.root, "admin.ok"))

    async def secure(self, admin_password: str) -> None:
        if self.prepared_admin:
            return
        await self.sql(f"CREATE OR REPLACE USER {account(ADMIN, 'localhost')} IDENTIFIED BY "
                       f"{lit(admin_password)}; GRANT ALL ON *.* TO {account(ADMIN, 'localhost')} "
                       "WITH GRANT OPTION; DROP USER IF EXISTS ''@'localhost'; FLUSH PRIVILEGES",
                       as_root=True)
        open(os.path.join(self.root, "admin.ok"), "w").close()

    async def databases(self) -> list[str]:
        return [r[0] for r in await self.sql("SHOW DATABASES") if r[0] not in SYSTEM_DATABASES]

    @staticmethod
    def _creating(databases) -> list[str]:
        statements = []
        for db in databases:
            options = ""
            if db.character_set:
                options += f" CHARACTER SET {lit(db.character_set)}"
            if db.collate:
                options += f" COLLATE {lit(db.collate)}"
            statements.append(f"CREATE DATABASE IF NOT EXISTS {ident(db.name)}{options}")
        return statements

    async def create_databases(self, databases) -> None:
        if databases:
            await self.sql("; ".join(self._creating(databases)))

    async def delete_database(self, name: str) -> None:
        if name not in await self.databases():
            raise DatastoreError(f"database {name!r} does not exist", "NOT_FOUND")
        await self.sql(f"DROP DATABASE {ident(name)}")

    async def list_databases(self) -> list[D.DatabaseSpec]:
        return [D.DatabaseSpec(name=n) for n in await self.databases()]

    async def accounts(self) -> list[tuple[str, str]]:
        rows = await self.sql("SELECT User, Host FROM mysql.user ORDER BY User, Host")
        return [(r[0], r[1]) for r in rows if r[0] not in SYSTEM_USERS
                and r[0] != os.environ.get("NIMBUS_DATASTORE_USER", "nimbus-db")
                and not r[0].startswith(REPLICATION_PREFIX)]

    @staticmethod
    def _creating_users(users) -> list[str]:
        statements = []
        for user in users:
            who = account(user.name, user.host)
            statements += [f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY PASSWORD {lit(user.verifier)}",
                           f"ALTER USER {who} IDENTIFIED BY PASSWORD {lit(user.verifier)}",
                           *(f"GRANT ALL PRIVILEGES ON {ident(db)}.* TO {who}" for db in user.databases)]
        return statements

    async def create_users(self, users) -> None:
        if not users:
            return
        wanted = {db for user in users for db in user.databases}
        missing = wanted - set(await self.databases()) if wanted else set()
        if missing:
            raise DatastoreError(f"database {sorted(missing)[0]!r} does not exist", "NOT_FOUND")
        await self.sql("; ".join(self._creating_users(users)))

    async def provision(self, databases, users) -> None:
        """Prepare's databases and users with one client."""
        statements = self._creating(databases) + self._creating_users(users)
        if statements:
            await self.sql("; ".join(statements))

    async def _check(self, user: str, host: str, databases: list[str]) -> None:
        if (user, host or "%") not in await self.accounts():
            raise DatastoreError(f"user {user!r}@{host or '%'!r} does not exist", "NOT_FOUND")
        missing = set(databases) - set(await self.databases())
        if missing:
            raise DatastoreError(f"database {sorted(missing)[0]!r} does not exist", "NOT_FOUND")

    async def delete_user(self, name: str, host: str) -> None:
        await self._check(name, host, [])
        await self.sql(f"DROP USER {account(name, host)}")

    async def list_users(self) -> list[D.UserSpec]:
        grants = await self.sql("SELECT User, Host, Db FROM mysql.db ORDER BY Db")
        out = []
        for user, host in await self.accounts():
            dbs = [g[2] for g in grants if (g[0], g[1]) == (user, host)]
            out.append(D.UserSpec(name=user, host=host, databases=dbs))
        return out

    async def grant(self, user: str, host: str, databases: list[str]) -> None:
        await self._check(user, host, databases)
        for db in databases:
            await self.sql(f"GRANT ALL PRIVILEGES ON {ident(db)}.* TO {account(user, host)}")

    async def revoke(self, user: str, host: str, database: str) -> None:
        await self._check(user, host, [database])
        await self.sql(f"REVOKE ALL PRIVILEGES ON {ident(database)}.* FROM {account(user, host)}")

    async def enable_root(self, root) -> None:
        who = account(self.root_user, "%")
        await self.sql(f"CREATE OR REPLACE USER {who} IDENTIFIED BY PASSWORD {lit(root.verifier)}; "
                       f"GRANT ALL ON *.* TO {who} WITH GRANT OPTION")

    async def root_enabled(self) -> bool:
        return bool(await self.sql("SELECT 1 FROM mysql.user WHERE User = 'root' AND Host = '%'"))

    # ---- backups (backup.py) -----------------------------------------------

    def _client_env(self) -> dict:
        return {**os.environ, "MYSQL_PWD": self.admin_password()}

    async def backup_command(self) -> tuple[list[str], dict, str]:
        databases = await self.databases()
        # --system=users: accounts and grants as CREATE USER / GRANT, not
        # the mysql schema's tables (which would overwrite the target's).
        argv = ["mariadb-dump", "--no-defaults", f"--socket={self.socket}", f"--user={ADMIN}",
                "--single-transaction", "--routines", "--triggers", "--events", "--system=users"]
        if databases:
            argv += ["--databases", *databases]
        return argv, self._client_env(), "mariadb-dump"

    def restore_command(self) -> tuple[list[str], dict]:
        return (["mariadb", "--no-defaults", f"--socket={self.socket}", f"--user={ADMIN}"],
                self._client_env())

    def restore_keep(self):
        """Drop the account statements about this guest's own accounts
        (the agent's admin, root, the system ones); rows pass untouched."""
        system = {ADMIN, self.root_user, "mariadb.sys", "PUBLIC",
                  os.environ.get("NIMBUS_DATASTORE_USER", "nimbus-db")}
        marks = [q + name.encode() + q + b"@" for name in system for q in (b"`", b"'")]
        marks += [q + REPLICATION_PREFIX.encode() for q in (b"`", b"'")]

        def keep(line: bytes) -> bool:
            return line.startswith(b"INSERT") or not any(m in line for m in marks)
        return keep

    # ---- replication: GTID ------------------------------------------------------

    async def enable_replication(self, account) -> None:
        who = f"{lit(account.name)}@'%'"
        # The rights of a replica's copy too (mariadb-dump --master-data --system=users).
        await self.sql(f"CREATE OR REPLACE USER {who} IDENTIFIED BY PASSWORD {lit(account.verifier)}; "
                       "GRANT REPLICATION SLAVE, SELECT, RELOAD, BINLOG MONITOR, SHOW VIEW, TRIGGER, "
                       f"EVENT, LOCK TABLES ON *.* TO {who}")

    def _remote(self, source) -> tuple[list[str], dict]:
        return (["--no-defaults", "-h", source.host, "-P", str(source.port), "--protocol=TCP",
                 f"--user={source.user}"], {**os.environ, "MYSQL_PWD": source.password})

    async def clone_replica(self, source, admin_password: str) -> None:
        """Initialised and secured as any instance, then a consistent copy of
        the source (its databases and accounts, with the GTID position it
        was taken at) and CHANGE MASTER ... MASTER_USE_GTID=slave_pos."""
        if not os.listdir(self.data):
            await self.initialise(admin_password)
        self.choose_port()
        await self._start_on_a_free_port()
        await self.secure(admin_password)
        remote, env = self._remote(source)
        out = await run(["mariadb", *remote, "--connect-timeout=5", "--batch", "--skip-column-names",
                         "-e", "SHOW DATABASES"], env=env)
        databases = [d for d in out.split() if d not in SYSTEM_DATABASES]
        dump = ["mariadb-dump", *remote, "--single-transaction", "--gtid", "--master-data=1",
                "--routines", "--triggers", "--events", "--system=users",
                *(["--databases", *databases] if databases else [])]
        await backup.load(self, backup.command_output(dump, env), None)
        await self.sql(f"CHANGE MASTER TO MASTER_HOST={lit(source.host)}, MASTER_PORT={source.port}, "
                       f"MASTER_USER={lit(source.user)}, MASTER_PASSWORD={lit(source.password)}, "
                       "MASTER_USE_GTID=slave_pos; START SLAVE; SET GLOBAL read_only=ON")
        open(self.replica_marker, "w").close()

    async def promote(self, _cmd=None) -> None:
        if not self.is_replica:
            return
        await self.sql("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=OFF")
        os.unlink(self.replica_marker)
