"""DatastoreService (Trove's datastore and version management): one record
per datastore with its versions at db/datastores/<name>; writes are admin
only, reads open to every caller. `resolve` is the create path's lookup."""

from __future__ import annotations

import re

from nimbus import errors, pagination
from nimbus.database.v1 import datastores_pb2 as S
from nimbus.database.v1 import datastores_pb2_grpc
from nimbus.rpc import auth
from nimbus.services.guestagent.main import PLUGINS
from nimbus.store import keys
from nimbus.store.store import Store

NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _check_name(field: str, value: str) -> None:
    if not NAME.fullmatch(value):
        raise errors.InvalidArgument(field, "1 to 64 letters, digits, '.', '_' or '-'")


def _check_version(field: str, v: S.DatastoreVersion) -> None:
    _check_name(f"{field}.name", v.name)
    if v.manager not in PLUGINS:
        raise errors.InvalidArgument(f"{field}.manager", f"one of {', '.join(sorted(PLUGINS))}")
    if not 0 <= v.warm_pool_size <= 10:
        raise errors.InvalidArgument(f"{field}.warm_pool_size", "0 to 10")
    if v.warm_pool_size and not v.warm_pool_flavor:
        raise errors.InvalidArgument(f"{field}.warm_pool_flavor", "a flavor id is required for a warm pool")
    if v.volume_support and v.max_accepted_volume_size < 1:
        raise errors.InvalidArgument(f"{field}.max_accepted_volume_size",
                                     "must be at least 1 when the version uses volumes")


async def resolve(store: Store, type_: str, version: str, default_type: str
                  ) -> tuple[S.Datastore, S.DatastoreVersion]:
    """Trove's get_datastore_version: the datastore (or the configured
    default), the version (or its default), which must be active. Read
    fresh: an admin's change just made must count."""
    name = type_ or default_type
    found = await store.get(keys.db_datastore(name), S.Datastore) if name else None
    if found is None:
        if not name:
            raise errors.InvalidArgument("datastore.type", "required: no default datastore is configured")
        raise errors.NotFound("datastore", name)
    ds = found.msg
    wanted = version or ds.default_version
    if not wanted:
        raise errors.InvalidArgument("datastore.version", f"datastore {name} has no default version")
    for v in ds.versions:
        if v.name == wanted:
            if not v.active:
                raise errors.InvalidArgument("datastore.version",
                                             f"datastore version {name} {wanted} is not active")
            return ds, v
    raise errors.NotFound("datastore_version", f"{name} {wanted}")


class DatastoreServicer(datastores_pb2_grpc.DatastoreServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    async def _update(self, name: str, mutate) -> S.Datastore:
        auth.require_admin()
        got = await self.store.update(keys.db_datastore(name), S.Datastore, mutate,
                                      not_found=errors.NotFound("datastore", name))
        return got.msg

    async def CreateDatastore(self, request, context):
        auth.require_admin()
        ds = request.datastore
        _check_name("datastore.name", ds.name)
        names = set()
        for i, v in enumerate(ds.versions):
            _check_version(f"datastore.versions[{i}]", v)
            if v.name in names:
                raise errors.InvalidArgument(f"datastore.versions[{i}].name", "duplicate version")
            names.add(v.name)
        if ds.default_version and ds.default_version not in names:
            raise errors.InvalidArgument("datastore.default_version", "not one of the versions")
        try:
            await self.store.create(keys.db_datastore(ds.name), ds)
        except errors.AlreadyExists:
            raise errors.AlreadyExists(f"datastore {ds.name} already exists") from None
        return S.CreateDatastoreResponse(datastore=ds)

    async def GetDatastore(self, request, context):
        got = await self.store.get(keys.db_datastore(request.name), S.Datastore)
        if got is None:
            raise errors.NotFound("datastore", request.name)
        return S.GetDatastoreResponse(datastore=got.msg)

    async def ListDatastores(self, request, context):
        items, _ = await self.store.list(keys.DB_DATASTORES, S.Datastore)
        page, token = pagination.page_of(request, [v.msg for _, v in items], lambda d: [d.name])
        return S.ListDatastoresResponse(datastores=page, next_page_token=token)

    async def DeleteDatastore(self, request, context):
        auth.require_admin()
        got = await self.store.get(keys.db_datastore(request.name), S.Datastore)
        if got is None:
            raise errors.NotFound("datastore", request.name)
        await self.store.txn([self.store.mod_is(keys.db_datastore(request.name), got.mod_revision)],
                             [self.store.delete(keys.db_datastore(request.name))])
        return S.DeleteDatastoreResponse()

    async def PutVersion(self, request, context):
        _check_version("version", request.version)

        def mutate(ds: S.Datastore):
            kept = [v for v in ds.versions if v.name != request.version.name]
            del ds.versions[:]
            ds.versions.extend([*kept, request.version])
            if not ds.default_version:
                ds.default_version = request.version.name
        return S.PutVersionResponse(datastore=await self._update(request.datastore, mutate))

    async def DeleteVersion(self, request, context):
        def mutate(ds: S.Datastore):
            kept = [v for v in ds.versions if v.name != request.version]
            if len(kept) == len(ds.versions):
                raise errors.NotFound("datastore_version", f"{request.datastore} {request.version}")
            del ds.versions[:]
            ds.versions.extend(kept)
            if ds.default_version == request.version:
                ds.default_version = ""
        return S.DeleteVersionResponse(datastore=await self._update(request.datastore, mutate))

    async def SetDefaultVersion(self, request, context):
        def mutate(ds: S.Datastore):
            if request.version not in {v.name for v in ds.versions}:
                raise errors.NotFound("datastore_version", f"{request.datastore} {request.version}")
            ds.default_version = request.version
        return S.SetDefaultVersionResponse(datastore=await self._update(request.datastore, mutate))
