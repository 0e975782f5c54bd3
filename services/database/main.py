"""nimbus-database (trove-api + trove-taskmanager): `python -m nimbus.services.database`.

One process serves DatabaseService, DatastoreService and GuestAgentService
(guests connect here) and, when elected, runs the task manager."""

from __future__ import annotations

import asyncio
import os

from nimbus import config, log, process
from nimbus.database.v1 import (backups_pb2, backups_pb2_grpc, database_pb2, database_pb2_grpc,
                                datastores_pb2, datastores_pb2_grpc, guest_pb2, guest_pb2_grpc)
from nimbus.database.v1 import records_pb2 as R
from nimbus.rpc import auth, tls
from nimbus.rpc.server import Server
from nimbus.services.database.backup_handlers import BackupServicer
from nimbus.services.database.backups import Backups
from nimbus.services.database import backupstore
from nimbus.services.database.compute import ComputeClient
from nimbus.services.database.datastores import DatastoreServicer
from nimbus.services.database.guests import GuestAuthenticator, GuestHub
from nimbus.services.database.handlers import DatabaseServicer
from nimbus.services.database.simulation import LocalGuests
from nimbus.services.database.taskmanager import TaskManager
from nimbus.services.database.warmpool import WarmPools
from nimbus.store import keys
from nimbus.store.election import LeaderElection
from nimbus.store.informer import Informer
from nimbus.store.store import Store

_log = log.get("nimbus.database")


class DatabaseProcess(process.ServiceProcess):
    async def start(self) -> "DatabaseProcess":
        cfg = self.cfg
        if cfg.guest_launch not in ("local", "none"):
            raise SystemExit("--guest-launch is local or none")
        self.store = await Store.for_config(cfg)
        self.closers.append(self.store.close)
        self.instances = Informer(self.store, keys.DB_INSTANCES, R.InstanceRecord)
        self.guests = Informer(self.store, keys.GUESTS, R.GuestRecord)
        self.backup_records = Informer(self.store, keys.DB_BACKUPS, R.BackupRecord)
        informers = (self.instances, self.guests, self.backup_records)
        for informer in informers:
            self.spawn(informer.run())
        self.compute = ComputeClient(cfg.api_address, cfg.service_token, tls.client(cfg))
        self.closers.append(self.compute.close)
        self.server = Server("database", cfg.listen or cfg.database_address,
                             auth.for_users(cfg, lambda **kw: GuestAuthenticator(self.guests, **kw)),
                             tls.server(cfg))
        self.hub = GuestHub(self.store, self.instances, self.guests, cfg.agent_heartbeat_expiry)
        backup_store = backupstore.for_config(cfg)
        self.closers.append(backup_store.close)
        self.backups = Backups(self.store, self.backup_records, self.instances, backup_store)
        self.backups.hub = self.hub
        self.hub.backups = self.backups
        self.server.add(database_pb2_grpc.add_DatabaseServiceServicer_to_server,
                        DatabaseServicer(self.store, self.instances, self.compute,
                                         self.hub, cfg.default_datastore, cfg.usage_timeout,
                                         self.backups),
                        database_pb2.DESCRIPTOR.services_by_name["DatabaseService"])
        self.server.add(backups_pb2_grpc.add_BackupServiceServicer_to_server,
                        BackupServicer(self.store, self.backups),
                        backups_pb2.DESCRIPTOR.services_by_name["BackupService"])
        self.server.add(datastores_pb2_grpc.add_DatastoreServiceServicer_to_server,
                        DatastoreServicer(self.store),
                        datastores_pb2.DESCRIPTOR.services_by_name["DatastoreService"])
        self.server.add(guest_pb2_grpc.add_GuestAgentServiceServicer_to_server, self.hub,
                        guest_pb2.DESCRIPTOR.services_by_name["GuestAgentService"])
        self.local = None
        if cfg.guest_launch == "local":
            self.local = LocalGuests(cfg.guest_dir or os.path.join(cfg.state_dir, "guests"),
                                     cfg.guest_heartbeat)
        await self.server.start()
        self.taskmanager = TaskManager(self.store, self.instances, self.compute, self.hub,
                                       self.server.address, self.local,
                                       control_ca=_read_ca(cfg) if tls.server(cfg) else "")
        self.taskmanager.resume_guests = cfg.resume_guests_state_on_host_boot
        self.warm_pools = WarmPools(self.store, self.instances, cfg.usage_timeout)
        self.election = LeaderElection(self.store, "database-taskmanager")
        for informer in informers:
            await informer.synced.wait()
        self.spawn(self.election.run(self.lead))
        self.spawn(self.hub.watchdog())
        await self.server.set_serving()
        return self

    async def lead(self) -> None:
        """The leader's work: instance builds and deletes, backups, warm pools."""
        await asyncio.gather(self.taskmanager.lead(), self.backups.lead(), self.warm_pools.lead())


def _read_ca(cfg: config.Config) -> str:
    if not cfg.tls_ca:
        raise SystemExit("TLS on DatabaseService needs --tls-ca: guests verify it with the CA")
    with open(cfg.tls_ca) as f:
        return f.read()


def main(argv: list[str] | None = None) -> None:
    def check(cfg: config.Config) -> str | None:
        if not cfg.service_token:
            return "needs a service token (NIMBUS_SERVICE_TOKEN) to call ComputeService"
        return None
    process.main(DatabaseProcess, argv, "nimbus database service (trove)",
                 config.DEFAULT_DATABASE_ADDRESS, check)
