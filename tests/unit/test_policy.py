"""The policy table covers every RPC of every service, and its roles mean
what Keystone's do."""

import importlib
import pkgutil

import pytest

import nimbus
from nimbus import policy


def _services():
    """Every service descriptor in the generated *_pb2 modules."""
    for info in pkgutil.walk_packages(nimbus.__path__, "nimbus."):
        if info.name.endswith("_pb2") and ".services." not in info.name:
            module = importlib.import_module(info.name)
            yield from module.DESCRIPTOR.services_by_name.values()


def test_every_rpc_has_a_rule():
    services = list(_services())
    assert len(services) >= 16   # the walk found the generated modules
    missing = [f"{s.full_name}/{m.name}" for s in services for m in s.methods
               if m.name not in policy.TABLE.get(s.full_name, {})]
    assert not missing, "no policy rule for:\n  " + "\n  ".join(missing)


def test_no_rule_for_a_method_that_does_not_exist():
    known = {s.full_name: {m.name for m in s.methods} for s in _services()}
    stale = [f"{service}/{method}" for service, methods in policy.TABLE.items()
             for method in methods if method not in known.get(service, ())]
    assert not stale, f"rules for methods no service has: {stale}"


def test_reads_are_reader_writes_member_or_more():
    """Get/List/Watch/Describe never need more than reader unless the table
    says admin; nothing that changes a user resource is open to a reader."""
    for service, methods in policy.TABLE.items():
        for method, rule in methods.items():
            if rule.role == policy.READER:
                assert method.startswith(("Get", "List", "Watch", "Describe", "Is", "Download")), \
                    f"{service}/{method} is open to readers but looks like a change"


ROLES = {"reader": {"reader"}, "member": {"member"}, "admin": {"admin"},
         "service": {"service"}, "agent": {"agent"}, "guest": {"guest"}, "none": set()}


@pytest.mark.parametrize("method,who,allowed", [
    ("/nimbus.compute.v1.ComputeService/ListServers", "reader", True),
    ("/nimbus.compute.v1.ComputeService/CreateServer", "reader", False),
    ("/nimbus.compute.v1.ComputeService/CreateServer", "member", True),
    ("/nimbus.compute.v1.ComputeService/CreateServer", "admin", True),
    ("/nimbus.compute.v1.ComputeService/CreateFlavor", "member", False),
    ("/nimbus.compute.v1.ComputeService/CreateFlavor", "admin", True),
    ("/nimbus.compute.v1.ComputeService/CreateFlavor", "service", True),
    ("/nimbus.compute.v1.ComputeService/CreateServer", "agent", False),
    ("/nimbus.compute.v1.ComputeService/DownloadImage", "agent", True),
    ("/nimbus.compute.v1.ComputeService/GetServer", "none", False),
    ("/nimbus.compute.v1.HypervisorService/ListHypervisors", "member", False),
    ("/nimbus.conductor.v1.ConductorService/UpdateInstance", "agent", True),
    ("/nimbus.conductor.v1.ConductorService/UpdateInstance", "admin", False),
    ("/nimbus.conductor.v1.ConductorService/GetConsoleOutput", "agent", False),
    ("/nimbus.scheduler.v1.SchedulerService/SelectDestinations", "agent", False),
    ("/nimbus.scheduler.v1.SchedulerService/SelectDestinations", "service", True),
    ("/nimbus.database.v1.GuestAgentService/Connect", "guest", True),
    ("/nimbus.database.v1.GuestAgentService/Connect", "admin", False),
    ("/nimbus.database.v1.DatabaseService/CreateInstance", "guest", False),
    ("/nimbus.database.v1.DatastoreService/CreateDatastore", "member", False),
])
def test_allows(method, who, allowed):
    assert policy.allows(policy.rule_for(method), frozenset(ROLES[who])) is allowed


def test_agent_rules_name_a_host_field_of_their_request():
    """Every host-scoped rule's field exists in its request message."""
    by_name = {s.full_name: s for s in _services()}
    from google.protobuf import message_factory
    for service, methods in policy.TABLE.items():
        for method, rule in methods.items():
            if rule.host_field:
                desc = by_name[service].methods_by_name[method].input_type
                request = message_factory.GetMessageClass(desc)()
                assert policy.field_value(request, rule.host_field) == ""
