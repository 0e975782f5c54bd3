"""The etcd key schema, in one place. Every key is <prefix><kind>/<parts>.

    instances/<uuid>                 InstanceRecord
    actions/<uuid>/<request id>      InstanceAction
    nodes/<host>                     NodeRecord, on the agent's lease
    providers/<host>                 ProviderUsage (its mod_revision is the claim generation)
    allocations/<host>/<consumer>    Allocation
    flavors/<id>                     Flavor
    images/<id>                      ImageRecord
    leaders/<role>                   the elected leader's id, on its lease
"""

from __future__ import annotations

INSTANCES = "instances/"
ACTIONS = "actions/"
NODES = "nodes/"
PROVIDERS = "providers/"
ALLOCATIONS = "allocations/"
FLAVORS = "flavors/"
IMAGES = "images/"
LEADERS = "leaders/"


def instance(instance_id: str) -> str:
    return INSTANCES + instance_id


def action(instance_id: str, request_id: str) -> str:
    return f"{ACTIONS}{instance_id}/{request_id}"


def node(host: str) -> str:
    return NODES + host


def provider(host: str) -> str:
    return PROVIDERS + host


def allocation(host: str, consumer_id: str) -> str:
    return f"{ALLOCATIONS}{host}/{consumer_id}"


def flavor(flavor_id: str) -> str:
    return FLAVORS + flavor_id


def image(image_id: str) -> str:
    return IMAGES + image_id


def leader(role: str) -> str:
    return LEADERS + role
