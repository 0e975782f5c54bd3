"""ComputeService: the public API. It validates and writes; the conductor
and the agents do the rest (watching task_state). Every read is scoped to
the caller's project; a server of another project is NOT_FOUND, not
PERMISSION_DENIED, so ids of other projects are not confirmed.

References that do not exist (flavor, image, server) are NOT_FOUND, with a
ResourceInfo and the request field that named them."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import re
import uuid

from nimbus.ids import is_uuid
from nimbus import (crashpoints, errors, idempotency, instances, ipam, log, pagination, quota,
                    reservations, servergroups, states)
from nimbus.compute.v1 import compute_pb2, compute_pb2_grpc, networks_pb2
from nimbus.imagestore import ImageStore, file_chunks
from nimbus.rpc import auth, interceptor
from nimbus.services.compute import boot_volumes, create, flavor_access, image_members, listing
from nimbus.services.compute.admission import Admission, Committer
from nimbus.services.compute.resize import ResizeActions
from nimbus.services.compute.server_actions import ServerActions
from nimbus.services.compute.volume_attachments import VolumeAttachments
from nimbus.services.compute.validation import validate_metadata, validate_name
from nimbus.services.compute.aggregates import zones as aggregate_zones
from nimbus.services.compute.keypairs import get_keypair
from nimbus.services.compute.security_groups import resolve_security_groups
from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from nimbus.store.informer import DELETED, OVERFLOW, SYNCED, Informer
from nimbus.store.store import MAX_REQUEST_BYTES, Store, now, txn_bytes

_log = log.get("nimbus.compute")
C = compute_pb2
# Servers per CreateServer call: one etcd txn holds them all, and etcd takes
# at most 128 operations per txn (2 per server + the usage).
MAX_COUNT = 10000   # a request's sanity bound; the quota is the real ceiling
SMALL_CREATE = 60   # above: size the create by the quota before building records
# aki/ari: a kernel or a ramdisk for direct kernel boot (Glance's names).
DISK_FORMATS = ("qcow2", "raw", "iso", "aki", "ari")

def validate_counts(min_count: int, max_count: int) -> tuple[int, int]:
    min_count = min_count or 1
    max_count = max_count or min_count
    if min_count < 1:
        raise errors.InvalidArgument("min_count", "must be at least 1")
    if max_count < min_count:
        raise errors.InvalidArgument("max_count", "must be greater than or equal to min_count")
    if max_count > MAX_COUNT:
        raise errors.InvalidArgument("max_count", f"must be at most {MAX_COUNT}")
    return min_count, max_count

def visible(server: C.Server, who: auth.Identity, all_projects: bool = False) -> bool:
    return server.project_id == who.project_id or (all_projects and who.is_admin) or who.is_service

def check_all_projects(all_projects: bool, who: auth.Identity) -> None:
    if all_projects and not who.is_admin:
        raise errors.PermissionDenied("all_projects is restricted to admins")

def public_view(server: C.Server, who: auth.Identity) -> C.Server:
    """Fault details (hypervisor messages) are for admins only."""
    if server.fault.details and not who.is_admin:
        copy = C.Server()
        copy.CopyFrom(server)
        copy.fault.details = ""
        return copy
    return server

class Catalog:
    """Flavors and images by id or name, from informers, with a read through
    etcd on a miss (so a flavor created a moment ago is found at once)."""

    def __init__(self, store: Store):
        self.store = store
        self.flavors = Informer(store, keys.FLAVORS, C.Flavor)
        # For auto networking: does the project have a network at all?
        self.networks = Informer(store, keys.NETWORKS, networks_pb2.Network)
        self.images = Informer(store, keys.IMAGES, records_pb2.ImageRecord)

    async def _find(self, informer: Informer, ref: str, name_of) -> list:
        def match(items: dict) -> list:
            hit = items.get(informer.prefix + ref)
            if hit is not None:
                return [hit.msg]
            return [v.msg for v in items.values() if name_of(v.msg) == ref]
        # Miss: read through, matching etcd's records (the informer may lag
        # behind a create or a rename: its copy would still carry the old name).
        return match(informer.items) or match(dict((await self.store.list(
            informer.prefix, informer.cls))[0]))

    async def flavor(self, ref: str, field: str, who: auth.Identity | None = None) -> C.Flavor:
        """The flavor `ref` names; with `who`, NOT_FOUND unless they may use it
        (a private flavor without access is not confirmed to exist, as Nova)."""
        if not ref:
            raise errors.InvalidArgument(field, "is required")
        found = await self._find(self.flavors, ref, lambda f: f.name)
        if found and who is not None and not await flavor_access.may_use(self.store, found[0], who):
            found = []
        if not found:
            raise errors.NotFound("flavor", ref)
        return found[0]

    async def image(self, ref: str, field: str, who: auth.Identity) -> records_pb2.ImageRecord:
        if not ref:
            raise errors.InvalidArgument(field, "is required")
        # An agent (a service) fetches a server's image whoever owns it.
        found = [r for r in await self._find(self.images, ref, lambda r: r.image.name)
                 if await image_members.may_see(self.store, r.image, who)]
        if not found:
            raise errors.NotFound("image", ref)
        if len(found) > 1:
            raise errors.InvalidArgument(field, f"{len(found)} images are named {ref!r}; use an id")
        record = found[0]
        if record.image.status != C.IMAGE_STATUS_ACTIVE:
            # The informer may not have seen the upload finish yet: read through.
            fresh = await self.store.get(keys.image(record.image.id), records_pb2.ImageRecord)
            record = fresh.msg if fresh is not None else record
        return record

class ComputeServicer(ServerActions, ResizeActions, flavor_access.FlavorAccess,
                      image_members.ImageMembers, VolumeAttachments,
                      compute_pb2_grpc.ComputeServiceServicer):
    def __init__(self, store: Store, catalog: Catalog, instances: Informer, images: ImageStore,
                 staging_dir: str, conductor=None, service_metadata=(), addresses=None):
        self.store = store
        self.addresses = addresses   # addresses.Addresses, or None: servers show none
        # The conductor relays what only a host can answer (console output).
        self.conductor = conductor
        self.service_metadata = service_metadata
        self.catalog = catalog
        self.instances = instances
        self.images = images
        self.staging_dir = staging_dir
        self.default_volume_type = "default"   # the type of volumes made for a boot
        # Local deletes: one quota release per project at a time in this
        # process (the usage compare keeps it correct across processes; the
        # lock spares concurrent deletes a storm of lost races).
        self.quota_locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self.committer = Committer(store)
        self.tokens = idempotency.Tokens(store)
        self.default_group_exists: set[str] = set()
        os.makedirs(staging_dir, exist_ok=True)

    # ---- servers ----------------------------------------------------------

    def view(self, server: C.Server, who: auth.Identity) -> C.Server:
        """What a caller sees of a server: its addresses, its fault as allowed."""
        if self.addresses is not None:
            server = self.addresses.fill(server)
        return public_view(server, who)

    async def CreateServer(self, request, context):
        return await self.create_servers(request, auth.identity())

    async def create_servers(self, request: C.CreateServerRequest,
                             who: auth.Identity) -> C.CreateServerResponse:
        """The one create path (CreateServer and EC2's RunInstances)."""
        # Shape first (cheap, no reads), then references, then quota + write.
        name = validate_name(request.name)
        min_count, max_count = validate_counts(request.min_count, request.max_count)
        validate_metadata(request.metadata, max_items=None)
        create.check_user_data(request)
        create.check_description(request)
        create.check_access_ips(request)
        create.check_personality(request)
        create.check_networks(request)
        create.check_scheduler_hints(request.scheduler_hints)
        block_devices = create.block_devices(request)
        zone, forced_host = create.parse_availability_zone(request.availability_zone, who.is_admin)
        token_key = ""
        if request.client_token:
            idempotency.check_token(request.client_token)
            token_key = idempotency.token_key(who.project_id, request.client_token)
            if (seen := await self.tokens.find(token_key, request)) is not None:
                return await self.tokens.replay(seen)

        if request.metadata or request.personality:   # limits only matter for these
            limits = await quota.limits(self.store, who.project_id)
            quota.check_metadata(limits, request.metadata, project=who.project_id)
            quota.check_personality(limits, request.personality, project=who.project_id)
        flavor = await self.catalog.flavor(request.flavor_ref, "flavor_ref", who)
        image = await self._boot_image(request, block_devices, flavor, who)
        for field in ("kernel_id", "ramdisk_id"):
            if getattr(request, field):
                await self.catalog.image(getattr(request, field), field, who)
        boot = await boot_volumes.plan(self.store, self.catalog, block_devices, who, max_count,
                                       self.default_volume_type, flavor)
        if boot is not None and max_count * (2 + len(boot.planned)) > 120:
            raise errors.InvalidArgument(   # one etcd txn holds every record (at most 128 ops)
                "max_count", f"at most {120 // (2 + len(boot.planned))} servers with "
                             f"{len(boot.planned)} volume(s) each")
        if ipam.may_have_ports((v.msg for v in self.catalog.networks.items.values()),
                               who.project_id, request.networks, request.networks_mode):
            await ipam.validate_requests(self.store, who.project_id, request.networks,
                                         networks_mode=request.networks_mode, max_count=max_count)
        public_keys = {}
        if request.key_name:
            keypair = await get_keypair(self.store, who.user_id, request.key_name)
            public_keys[keypair.msg.name] = keypair.msg.public_key
        if not request.security_groups and who.project_id in self.default_group_exists:
            security_groups = ["default"]   # it exists and cannot be deleted: skip the read
        else:
            groups = await resolve_security_groups(self.store, who.project_id,
                                                   request.security_groups)
            security_groups = [g.name for g in groups]
            if not request.security_groups:
                self.default_group_exists.add(who.project_id)
        if zone or forced_host:
            zones = await aggregate_zones(self.store)
            if zone and zone not in zones:
                raise errors.NotFound("availability_zone", zone)
            if forced_host and not any(forced_host in hosts for hosts in zones.values()):
                raise errors.NotFound("host", forced_host)
        group = None
        for field in ("same_host", "different_host"):
            for server_id in getattr(request.scheduler_hints, field):
                # Another project's server is not found, as any reference:
                # the hint must not confirm that it exists or where it runs.
                await self._server(server_id, who)
        if request.scheduler_hints.group:
            group = await servergroups.get_server_group(self.store, who.project_id,
                                                        request.scheduler_hints.group)

        reservation_id = "r-" + uuid.uuid4().hex[:8]
        request_id = interceptor.request_id()
        created = now()
        admin_pass = request.admin_pass or create.generate_password()
        response = C.CreateServerResponse(reservation_id=reservation_id, admin_pass=admin_pass)
        per_item = {**quota.instance_deltas(flavor.vcpus, flavor.ram_mb),
                    **(boot.per_server if boot is not None else {})}
        if max_count > SMALL_CREATE:
            # Ids and records only for what the quota can admit (the
            # committer checks again, atomically).
            snap = await quota.snapshot(self.store, who.project_id)
            max_count = max(min_count, quota.fit_count(snap.limits, snap.usage, per_item, max_count))
        template = records_pb2.InstanceRecord(
            server=C.Server(
                project_id=who.project_id, user_id=who.user_id, vm_state=C.VM_STATE_BUILDING,
                task_state=C.TASK_STATE_SCHEDULING, flavor_ref=flavor.id,
                image_ref=image.id if image else "", flavor=flavor, name=name,
                reservation_id=reservation_id, created_at=created,
                updated_at=created, metadata=request.metadata, config_drive=request.config_drive,
                key_name=request.key_name, security_groups=security_groups,
                access_ipv4=request.access_ipv4, access_ipv6=request.access_ipv6,
                availability_zone=zone, description=request.description,
                server_group=request.scheduler_hints.group),
            request_id=request_id, task_changed_at=created,
            networks=request.networks, networks_mode=request.networks_mode,
            block_devices=block_devices, scheduler_hints=request.scheduler_hints,
            forced_host=forced_host, public_keys=public_keys)
        if group is not None:
            template.group_policy = servergroups.policy_name(group.msg.policy)
            template.group_max_per_host = group.msg.rules.max_server_per_host
        # Bulky guest data lives apart from the record controllers watch.
        inputs = (records_pb2.BuildInputs(user_data=request.user_data,
                                          personality=request.personality)
                  if request.user_data or request.personality else None)
        server_ids = [str(uuid.uuid4()) for _ in range(max_count)]
        numbered = max_count > 1
        # Volumes at boot join each server's ops (written CREATING, or an
        # existing one reserved); such a create must fit one transaction.
        attach = (lambda record: boot.ops(self.store, record)) if boot is not None else None
        first, first_ops = reservations.server_ops(
            self.store, template, inputs, server_ids[0], 0,
            reservations.server_name(name, 0, numbered), attach)
        large = not reservations.fits_one_txn(len(first_ops), txn_bytes(first_ops), max_count)
        if large and boot is not None:
            raise errors.InvalidArgument(
                "max_count", f"{max_count} servers with volumes do not fit one etcd transaction: "
                             "ask for fewer")
        per_server, reservation = [], None
        if large:
            reservation = records_pb2.Reservation(
                reservation_id=reservation_id, project_id=who.project_id, template=template,
                build_inputs=inputs, server_ids=server_ids, numbered=numbered,
                created_at=created)
            if reservation.ByteSize() > MAX_REQUEST_BYTES // 2:   # its chunks need the rest
                raise errors.ResourceExhausted(
                    f"{max_count} servers with this request's data make a reservation of "
                    f"{reservation.ByteSize()} bytes, over half etcd's request limit of "
                    f"{MAX_REQUEST_BYTES} bytes: ask for fewer servers at a time")
        for index, server_id in enumerate(server_ids):
            record, ops = (first, first_ops) if index == 0 else reservations.server_ops(
                self.store, template, inputs, server_id, index,
                reservations.server_name(name, index, numbered), attach)
            response.servers.append(record.server)
            if not large:
                per_server.append(ops)
        # One transaction: as many servers as the quota allows between
        # min_count and max_count, their actions, the project's usage and the
        # group's members appear together or not at all; it is shared with
        # the project's concurrent creates (admission.py). A create too
        # large for one writes a reservation there, then its servers in
        # chunks (reservations.py).
        admission = Admission(
            project=who.project_id, per_item=per_item,
            extra_compares=boot.compares(self.store) if boot is not None else [],
            min_count=min_count, max_count=max_count, server_ops=per_server,
            server_ids=server_ids, group=group, reservation=reservation)
        if token_key:
            admission.token_key, admission.token_lease = token_key, await self.tokens.lease()
            admission.token = records_pb2.ClientToken(
                request_sha256=idempotency.request_hash(request), reservation_id=reservation_id,
                created_at=created)
        try:
            count = await self.committer.admit(admission)
        except idempotency.TokenTaken:
            return await self.tokens.replay(await self.tokens.find(token_key, request))
        if large:
            crashpoints.reach("create:reserved")
            await reservations.complete(self.store, reservation_id)
        del response.servers[count:]
        _log.info("servers created", count=count, reservation_id=reservation_id,
                  flavor=flavor.name, image=image.id if image else "")
        if request.return_reservation_id:
            del response.servers[:]
        return response

    async def _boot_image(self, request, block_devices, flavor: C.Flavor,
                          who: auth.Identity) -> C.Image | None:
        """The image to boot (checked against the flavor), or None when a
        block device with boot_index 0 is the boot disk (boot from volume)."""
        boot = next((b for b in block_devices if b.has_boot_index and b.boot_index == 0), None)
        ref = request.image_ref
        if not ref and boot is not None and boot.source_type == "image":
            ref = boot.uuid
        if not ref:
            if boot is not None:
                return None
            raise errors.InvalidArgument("image_ref", "is required unless a block device boots")
        image = (await self.catalog.image(ref, "image_ref", who)).image
        if image.status != C.IMAGE_STATUS_ACTIVE:
            raise errors.InvalidArgument("image_ref", f"image {image.id} is not active")
        if image.disk_format in ("aki", "ari"):
            raise errors.InvalidArgument("image_ref", f"image {image.id} is a kernel or ramdisk, "
                                                      "not a bootable disk")
        if image.min_ram_mb > flavor.ram_mb:
            raise errors.InvalidArgument(
                "flavor_ref", f"flavor's memory ({flavor.ram_mb} MB) is below the image's "
                              f"min_ram ({image.min_ram_mb} MB)")
        if flavor.disk_gb and image.min_disk_gb > flavor.disk_gb:
            raise errors.InvalidArgument(
                "flavor_ref", f"flavor's disk ({flavor.disk_gb} GB) is below the image's "
                              f"min_disk ({image.min_disk_gb} GB)")
        return image

    async def _server(self, server_id: str, who: auth.Identity):
        if not server_id:
            raise errors.InvalidArgument("id", "is required")
        if not is_uuid(server_id):
            raise errors.NotFound("server", server_id)
        found = await self.store.get(keys.instance(server_id), records_pb2.InstanceRecord)
        if found is None or not visible(found.msg.server, who, all_projects=True):
            raise errors.NotFound("server", server_id)
        return found

    async def GetServer(self, request, context):
        who = auth.identity()
        found = await self._server(request.id, who)
        return C.GetServerResponse(server=self.view(found.msg.server, who))

    async def ListServers(self, request, context):
        who = auth.identity()
        check_all_projects(request.all_projects, who)
        pagination.page_size_of(request.page_size)
        name = listing.name_pattern(request.name)
        sort_key, descending = listing.server_sort(request.sort_key, request.sort_dir)
        since = request.changes_since.ToNanoseconds() if request.HasField("changes_since") else None
        items, _ = await self.store.list(keys.INSTANCES, records_pb2.InstanceRecord)
        matching = [
            s for s in (v.msg.server for _, v in items)
            if visible(s, who, request.all_projects)
            and (name is None or name.search(s.name))
            and (not request.vm_state or s.vm_state == request.vm_state)
            and (not request.host or s.host == request.host)
            and (not request.reservation_id or s.reservation_id == request.reservation_id)
            and (since is None or s.updated_at.ToNanoseconds() >= since)]
        scope = pagination.query_scope(
            who.project_id, request.all_projects, request.name, request.vm_state, request.host,
            request.reservation_id, since, sort_key.__name__, descending)
        page, token = pagination.paginate(matching, sort_key, page_size=request.page_size,
                                          page_token=request.page_token, scope=scope,
                                          descending=descending)
        return C.ListServersResponse(servers=[self.view(s, who) for s in page],
                                     next_page_token=token)

    async def DeleteServer(self, request, context):
        who = auth.identity()
        found = await self._server(request.id, who)
        while True:
            server = found.msg.server
            if server.task_state == C.TASK_STATE_DELETING:
                return C.DeleteServerResponse(server=self.view(server, who))  # idempotent
            if not server.host:
                # Never placed (or failed before placement): nothing on any
                # host to clean up, so delete here (Nova's local delete),
                # releasing its quota in the same transaction.
                async with self.quota_locks[server.project_id]:
                    resp = await self.store.txn(*await instances.removal(self.store, found))
                if resp.succeeded:
                    await ipam.release_for_server(self.store, server.id)   # ports of an ERROR build
                    server.task_state = C.TASK_STATE_DELETING
                    return C.DeleteServerResponse(server=self.view(server, who))
            else:
                def mutate(rec):
                    rec.server.task_state = C.TASK_STATE_DELETING
                    rec.server.updated_at.CopyFrom(now())
                    rec.task_changed_at.CopyFrom(rec.server.updated_at)
                try:
                    updated = await self.store.update_instance(
                        server.id, mutate, current=found,
                        expected_task_states=states.ACTIONS["delete"].task_states)
                    return C.DeleteServerResponse(server=self.view(updated.msg.server, who))
                except errors.UnexpectedTaskState:
                    pass  # became DELETING meanwhile: re-read answers idempotently
            found = await self._server(request.id, who)

    async def WatchServers(self, request, context):
        who = auth.identity()
        check_all_projects(request.all_projects, who)
        await self.instances.synced.wait()
        wanted = request.id

        def match(rec):
            s = rec.server
            return (not wanted or s.id == wanted) and visible(s, who, request.all_projects)

        sub = self.instances.subscribe(match)
        Resp = C.WatchServersResponse
        try:
            while True:
                kind, v = await sub.queue.get()
                if kind == OVERFLOW:
                    raise errors.Unavailable("the watch fell too far behind; watch again")
                elif kind == SYNCED:
                    yield Resp(type=Resp.EVENT_TYPE_SYNCED)
                else:
                    yield Resp(type=Resp.EVENT_TYPE_DELETED if kind == DELETED
                               else Resp.EVENT_TYPE_UPSERT,
                               server=self.view(v.msg.server, who))
        finally:
            sub.close()

    # ---- flavors ----------------------------------------------------------

    async def ListFlavors(self, request, context):
        who = auth.identity()
        items, _ = await self.store.list(keys.FLAVORS, C.Flavor)
        flavors = [v.msg for _, v in items
                   if await flavor_access.may_use(self.store, v.msg, who)]
        page, token = pagination.page_of(request, flavors,
                                         lambda f: [f.ram_mb, f.vcpus, f.name, f.id],
                                         who.project_id, who.is_admin)
        return C.ListFlavorsResponse(flavors=page, next_page_token=token)

    async def GetFlavor(self, request, context):
        return C.GetFlavorResponse(flavor=await self.catalog.flavor(request.ref, "ref",
                                                                    auth.identity()))

    async def CreateFlavor(self, request, context):
        auth.require_admin()
        f = C.Flavor()
        f.CopyFrom(request.flavor)
        f.name = validate_name(f.name, "flavor.name")
        f.id = f.id or str(uuid.uuid4())
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,255}", f.id):
            raise errors.InvalidArgument("flavor.id", "letters, digits, '.', '_' and '-' only")
        for field, low in (("vcpus", 1), ("ram_mb", 1), ("disk_gb", 0), ("ephemeral_gb", 0),
                           ("swap_mb", 0)):
            if getattr(f, field) < low:
                raise errors.InvalidArgument(f"flavor.{field}", f"must be at least {low}")
        validate_metadata(f.extra_specs, "flavor.extra_specs")
        f.is_public = flavor_access.is_public(f)   # stored explicitly: Nova's default is public
        # Names are unique: the name index key joins the same transaction.
        name_key = "flavor-names/" + f.name
        resp = await self.store.txn(
            [self.store.mod_is(keys.flavor(f.id), 0), self.store.mod_is(name_key, 0)],
            [self.store.put(keys.flavor(f.id), f),
             self.store.put(name_key, C.Flavor(id=f.id))])
        if not resp.succeeded:
            raise errors.AlreadyExists(f"a flavor with id {f.id!r} or name {f.name!r} exists")
        return C.CreateFlavorResponse(flavor=f)

    # ---- images -----------------------------------------------------------

    async def ListImages(self, request, context):
        who = auth.identity()
        items, _ = await self.store.list(keys.IMAGES, records_pb2.ImageRecord)
        shared = await image_members.accepted_by(self.store, who.project_id)
        visible_images = [v.msg.image for _, v in items
                          if v.msg.image.visibility == "public"
                          or v.msg.image.owner == who.project_id or who.is_admin
                          or (v.msg.image.visibility == "shared" and v.msg.image.id in shared)]
        page, token = pagination.page_of(request, visible_images, lambda i: [i.name, i.id],
                                         who.project_id, who.is_admin)
        return C.ListImagesResponse(images=page, next_page_token=token)

    async def GetImage(self, request, context):
        who = auth.identity()
        return C.GetImageResponse(image=(await self.catalog.image(request.ref, "ref", who)).image)

    async def CreateImage(self, request_iterator, context):
        who = auth.identity()
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("image"):
            raise errors.InvalidArgument("image", "the first message must carry the image metadata")
        meta = C.Image()
        meta.CopyFrom(first.image)
        meta.name = validate_name(meta.name, "image.name")
        if meta.disk_format not in DISK_FORMATS:
            raise errors.InvalidArgument("image.disk_format", f"must be one of {', '.join(DISK_FORMATS)}")
        meta.visibility = meta.visibility or "private"
        image_members.check_visibility(meta.visibility, who, "image.visibility")
        for field in ("min_ram_mb", "min_disk_gb"):
            if getattr(meta, field) < 0:
                raise errors.InvalidArgument(f"image.{field}", "must not be negative")
        meta.id = str(uuid.uuid4())
        meta.owner = who.project_id
        meta.container_format = meta.container_format or "bare"
        meta.status = C.IMAGE_STATUS_QUEUED
        meta.created_at.CopyFrom(now())
        record = records_pb2.ImageRecord(image=meta)
        ikey = keys.image(meta.id)
        await self.store.create(ikey, record)
        # Stage locally, check, then store: nothing unchecked is ever stored.
        staging = os.path.join(self.staging_dir, meta.id + ".part")
        digest, size = hashlib.sha256(), 0
        try:
            with open(staging, "wb") as out:
                async for message in request_iterator:
                    if size == 0:
                        record.image.status = C.IMAGE_STATUS_SAVING
                        await self.store.txn([], [self.store.put(ikey, record)])
                    digest.update(message.chunk)
                    size += len(message.chunk)
                    out.write(message.chunk)
            if size == 0:
                raise errors.InvalidArgument("chunk", "the image has no data")
            if meta.disk_format not in ("aki", "ari"):
                await check_image_file(staging, meta.disk_format)
            record.location = await self.images.write(meta.id, file_chunks(staging), meta.disk_format)
        except BaseException:
            await self.store.txn([], [self.store.delete(ikey)])
            raise
        finally:
            if os.path.exists(staging):
                os.unlink(staging)
        meta = record.image   # the constructor copied meta into the record
        meta.size, meta.checksum, meta.status = size, digest.hexdigest(), C.IMAGE_STATUS_ACTIVE
        await self.store.txn([], [self.store.put(ikey, record)])
        _log.info("image stored", image_id=meta.id, size=size, disk_format=meta.disk_format)
        return C.CreateImageResponse(image=meta)

    async def DeleteImage(self, request, context):
        who = auth.identity()
        record = await self.catalog.image(request.ref, "ref", who)
        image = record.image
        if image.owner != who.project_id and not who.is_admin:
            raise errors.PermissionDenied(f"image {image.id} belongs to another project")
        records = [v.msg for v in list(self.instances.items.values())
                   if v.msg.server.image_ref == image.id]
        users = [r.server for r in records]
        building = [s.id for s in users if s.vm_state == C.VM_STATE_BUILDING]
        if building:
            raise errors.FailedPrecondition(
                f"image {image.id} is being fetched by building server {building[0]}")
        # A server's root disk is an overlay on its host's copy of the image,
        # and a move fetches that copy again on the destination: without the
        # image the move fails and the server ends in ERROR. A server that
        # never got a host, or is going away, has no such disk, nor has one
        # whose root (vda) is a volume (booted from an image to a volume).
        backed = [r.server.id for r in records if r.server.host
                  and r.server.task_state != C.TASK_STATE_DELETING
                  and r.server.vm_state != C.VM_STATE_DELETED
                  and not any(iv.device == "vda" for iv in r.volumes)]
        if backed:
            raise errors.FailedPrecondition(
                f"image {image.id} backs the root disk of server {backed[0]}"
                + (f" and {len(backed) - 1} more" if len(backed) > 1 else "")
                + ": a resize or migration of it needs the image; delete the servers first")
        if record.location:
            await self.images.delete(record.location)   # Ceph refuses while disks are clones
        await self.store.txn([], [self.store.delete(keys.image(image.id)),
                                  self.store.delete(keys.image_member(image.id), prefix=True)])
        _log.info("image deleted", image_id=image.id)
        return C.DeleteImageResponse()

    async def DownloadImage(self, request, context):
        who = auth.identity()
        record = await self.catalog.image(request.id, "id", who)
        if record.image.status != C.IMAGE_STATUS_ACTIVE:
            raise errors.FailedPrecondition(f"image {record.image.id} is not active")
        async for chunk in self.images.read(record.location):
            yield C.DownloadImageResponse(chunk=chunk)

async def check_image_file(path: str, disk_format: str) -> None:
    """The bytes must be what disk_format says, and never point at a backing
    file (a qcow2 could otherwise read any file on a host)."""
    from nimbus.imagebackend import qemu_img   # local: the API needs it only here
    try:
        info = await qemu_img.info(path)
    except qemu_img.QemuImgError as exc:
        raise errors.InvalidArgument("chunk", f"not a readable disk image: {exc}") from None
    actual = info.get("format")
    if disk_format == "qcow2" and actual != "qcow2":
        raise errors.InvalidArgument("image.disk_format", f"is qcow2 but the data is {actual}")
    if disk_format == "raw" and actual not in ("raw", "iso"):
        raise errors.InvalidArgument("image.disk_format", f"is raw but the data is {actual}")
    if info.get("backing-filename"):
        raise errors.InvalidArgument("chunk", "images with a backing file are refused")

