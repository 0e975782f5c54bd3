"""Database quotas (Trove's max_instances_per_tenant,
max_volumes_per_tenant in GB and max_backups_per_tenant): the usage key
changes in the same etcd transaction as the instance or backup record,
compared on its mod_revision."""

from __future__ import annotations

import dataclasses

from nimbus import errors, quota
from nimbus.database.v1 import records_pb2 as R
from nimbus.store import keys
from nimbus.store.store import Store

DEFAULTS = {"instances": 10, "volumes": 40, "backups": 50}   # Trove: max_backups_per_tenant 50


@dataclasses.dataclass
class Plan:
    compares: list
    ops: list


async def plan(store: Store, project_id: str, deltas: dict[str, int]) -> Plan:
    """Refuse with QuotaExceeded, or the fragment that applies `deltas`."""
    limits_rec = await store.get(keys.db_quota(project_id), R.DbQuota)
    used_rec = await store.get(keys.db_usage(project_id), R.DbUsage)
    limits = dict(DEFAULTS)
    if limits_rec is not None:
        limits |= {r: getattr(limits_rec.msg, r) for r in DEFAULTS if limits_rec.msg.HasField(r)}
    in_use = {r: getattr(used_rec.msg, r) if used_rec else 0 for r in DEFAULTS}
    violations = quota.violations(limits, in_use, deltas)
    if violations:
        raise errors.QuotaExceeded(project_id, violations)
    new = R.DbUsage(**{r: max(0, in_use[r] + deltas.get(r, 0)) for r in DEFAULTS})
    key = keys.db_usage(project_id)
    return Plan([store.mod_is(key, used_rec.mod_revision if used_rec else 0)], [store.put(key, new)])


def deltas(volume_gb: int, count: int = 1) -> dict[str, int]:
    return {"instances": count, "volumes": volume_gb * count}
