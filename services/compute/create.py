"""CreateServer's request checks, as Nova's servers.create and
compute_api._create_instance apply them. Pure functions over the request:
each raises errors.InvalidArgument naming the field (or QuotaExceeded /
PermissionDenied); references to other records are checked by the handler."""

from __future__ import annotations

import ipaddress
import re
import secrets
import string

from nimbus.ids import is_uuid
from nimbus import errors
from nimbus.compute.v1 import compute_pb2 as C

MAX_USER_DATA = 65535
MAX_DESCRIPTION = 255
# Nova's device-name rule (block_device.validate_device_name + the
# /dev/ prefix): letters, digits, '/', '_' and '-', at most 255.
DEVICE_NAME = re.compile(r"^(/dev/)?[a-z0-9_-][a-z0-9/_-]*$")
BOOL_STRINGS = {"1": True, "t": True, "true": True, "on": True, "y": True, "yes": True,
                "0": False, "f": False, "false": False, "off": False, "n": False, "no": False}
SOURCE_TYPES = ("image", "volume", "snapshot", "blank")
DESTINATION_TYPES = ("local", "volume")
PASSWORD_ALPHABET = string.ascii_letters + string.digits


def generate_password(length: int = 12) -> str:
    """Nova's generate_password: letters and digits, from the OS's CSPRNG."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def parse_bool(value: str, field: str) -> bool:
    """delete_on_termination and friends, as Nova's strutils.bool_from_string(strict=True)."""
    if value == "":
        return False
    parsed = BOOL_STRINGS.get(value.strip().lower())
    if parsed is None:
        raise errors.InvalidArgument(field, f"{value!r} is not a boolean (true/false, 1/0, yes/no)")
    return parsed


def check_access_ips(request: C.CreateServerRequest) -> None:
    for field, version in (("access_ipv4", 4), ("access_ipv6", 6)):
        value = getattr(request, field)
        if not value:
            continue
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            ip = None
        if ip is None or ip.version != version:
            raise errors.InvalidArgument(field, f"{value!r} is not a valid IPv{version} address")


def check_description(request: C.CreateServerRequest) -> None:
    if len(request.description) > MAX_DESCRIPTION:
        raise errors.InvalidArgument("description", f"must be at most {MAX_DESCRIPTION} characters")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in request.description):
        raise errors.InvalidArgument("description", "must not contain control characters")


def check_user_data(request: C.CreateServerRequest) -> None:
    if len(request.user_data) > MAX_USER_DATA:
        raise errors.InvalidArgument("user_data", f"must be at most {MAX_USER_DATA} bytes")


def check_personality(request: C.CreateServerRequest) -> None:
    for i, item in enumerate(request.personality):
        if not item.path.strip():
            raise errors.InvalidArgument(f"personality[{i}].path", "is required")


def check_networks(request: C.CreateServerRequest) -> None:
    mode = request.networks_mode
    if mode not in ("", "auto", "none"):
        raise errors.InvalidArgument("networks_mode", "must be auto or none")
    if mode and request.networks:
        raise errors.InvalidArgument("networks_mode", f"{mode!r} cannot be combined with networks")
    seen_ports = set()
    for i, net in enumerate(request.networks):
        field = f"networks[{i}]"
        if not net.uuid and not net.port:
            raise errors.InvalidArgument(field, "needs a network uuid or a port")
        if net.uuid and not is_uuid(net.uuid):
            raise errors.InvalidArgument(f"{field}.uuid", f"{net.uuid!r} is not a UUID")
        if net.port:
            if not is_uuid(net.port):
                raise errors.InvalidArgument(f"{field}.port", f"{net.port!r} is not a UUID")
            if net.port in seen_ports:
                raise errors.InvalidArgument(f"{field}.port", "the same port is requested twice")
            seen_ports.add(net.port)
        if net.fixed_ip:
            try:
                ipaddress.ip_address(net.fixed_ip)
            except ValueError:
                raise errors.InvalidArgument(f"{field}.fixed_ip",
                                             f"{net.fixed_ip!r} is not an IP address") from None
            if net.port:
                raise errors.InvalidArgument(f"{field}.fixed_ip", "cannot be given with a port")


def parse_availability_zone(value: str, is_admin: bool) -> tuple[str, str]:
    """'zone', 'zone:host' or 'zone:host:node' -> (zone, forced host). Forcing
    a host is for admins only (Nova's policy)."""
    if not value:
        return "", ""
    parts = value.split(":")
    if len(parts) > 3 or any(not part for part in parts[:1]):
        raise errors.InvalidArgument("availability_zone", "is 'zone', 'zone:host' or 'zone:host:node'")
    zone = parts[0]
    host = parts[1] if len(parts) > 1 else ""
    if len(parts) == 3 and not host:
        host = parts[2]   # 'zone::node': the node names the host here (one node per host)
    if host and not is_admin:
        raise errors.PermissionDenied("forcing a host (availability_zone 'zone:host') is admin only")
    return zone, host


def check_device_name(name: str, field: str) -> None:
    if name and (len(name) > 255 or not DEVICE_NAME.match(name)):
        raise errors.InvalidArgument(field, f"{name!r} is not a valid device name")


def block_devices(request: C.CreateServerRequest) -> list[C.BlockDeviceMapping]:
    """Both syntaxes to v2 entries (Nova's BlockDeviceDict.from_legacy), checked."""
    if request.block_device_mapping and request.block_device_mapping_v2:
        raise errors.InvalidArgument("block_device_mapping",
                                     "cannot be combined with block_device_mapping_v2")
    out: list[C.BlockDeviceMapping] = []
    for i, legacy in enumerate(request.block_device_mapping):
        field = f"block_device_mapping[{i}]"
        check_device_name(legacy.device_name, f"{field}.device_name")
        if legacy.volume_size < 0:
            raise errors.InvalidArgument(f"{field}.volume_size", "must be positive")
        delete = parse_bool(legacy.delete_on_termination, f"{field}.delete_on_termination")
        if legacy.no_device:
            out.append(C.BlockDeviceMapping(device_name=legacy.device_name, no_device=True))
        elif legacy.volume_id or legacy.snapshot_id:
            ref = legacy.volume_id or legacy.snapshot_id
            if not is_uuid(ref):
                raise errors.InvalidArgument(f"{field}.{'volume_id' if legacy.volume_id else 'snapshot_id'}",
                                             f"{ref!r} is not a UUID")
            out.append(C.BlockDeviceMapping(
                source_type="volume" if legacy.volume_id else "snapshot", destination_type="volume",
                uuid=ref, volume_size=legacy.volume_size, device_name=legacy.device_name,
                delete_on_termination=delete,
                boot_index=0 if legacy.device_name in ("vda", "/dev/vda") else -1,
                has_boot_index=True))
        elif legacy.virtual_name:
            if not re.fullmatch(r"ephemeral\d+|swap", legacy.virtual_name):
                raise errors.InvalidArgument(f"{field}.virtual_name",
                                             "must be ephemeralN or swap")
            out.append(C.BlockDeviceMapping(
                source_type="blank", destination_type="local", device_name=legacy.device_name,
                guest_format="swap" if legacy.virtual_name == "swap" else "",
                delete_on_termination=True, boot_index=-1, has_boot_index=True))
        else:
            raise errors.InvalidArgument(field, "needs volume_id, snapshot_id, virtual_name or no_device")
    for i, bdm in enumerate(request.block_device_mapping_v2):
        field = f"block_device_mapping_v2[{i}]"
        check_device_name(bdm.device_name, f"{field}.device_name")
        if bdm.no_device:
            out.append(bdm)
            continue
        if bdm.source_type not in SOURCE_TYPES:
            raise errors.InvalidArgument(f"{field}.source_type", f"must be one of {', '.join(SOURCE_TYPES)}")
        if bdm.destination_type not in ("", *DESTINATION_TYPES):
            raise errors.InvalidArgument(f"{field}.destination_type", "must be local or volume")
        if bdm.volume_size < 0:
            raise errors.InvalidArgument(f"{field}.volume_size", "must be positive")
        if bdm.source_type != "blank" and not is_uuid(bdm.uuid):
            raise errors.InvalidArgument(f"{field}.uuid", f"{bdm.uuid!r} is not a UUID")
        if bdm.source_type == "blank" and bdm.destination_type == "volume" and bdm.volume_size <= 0:
            raise errors.InvalidArgument(f"{field}.volume_size", "a blank volume needs a size")
        out.append(bdm)
    boots = [b for b in out if b.has_boot_index and b.boot_index == 0]
    if len(boots) > 1:
        raise errors.InvalidArgument("block_device_mapping_v2", "only one device can have boot_index 0")
    return out


def check_scheduler_hints(hints: C.SchedulerHints) -> None:
    if hints.group and not is_uuid(hints.group):
        raise errors.InvalidArgument("scheduler_hints.group", f"{hints.group!r} is not a UUID")
    for field in ("different_host", "same_host"):
        for i, value in enumerate(getattr(hints, field)):
            if not is_uuid(value):
                raise errors.InvalidArgument(f"scheduler_hints.{field}[{i}]", f"{value!r} is not a UUID")
