"""A peer of the agent that restarts (kill -9, then started again on the
same address) is waited out with backoff: it never costs a build attempt."""

import asyncio

from nimbus.state.v1 import records_pb2
from nimbus.store import keys
from stack import C, Stack, user


async def test_api_killed_and_restarted_during_a_storm(etcd, tmp_path, qcow2_image):
    async with Stack(etcd.endpoint, str(tmp_path), hosts=4, vcpus=32, memory_mb=32768,
                     subprocesses=("compute",)) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        # A 100-server storm: 10 projects (Nova's quota: 10 servers each) of 10.
        answers = await asyncio.gather(*(s.api.CreateServer(C.CreateServerRequest(
            name="storm", image_ref="cirros", flavor_ref="m1.tiny", min_count=10, max_count=10),
            metadata=user(project=f"storm-{p}")) for p in range(10)))
        servers = [srv for resp in answers for srv in resp.servers]
        # The hosts now fetch the image from the API, which dies under them.
        s.compute.kill()
        await asyncio.sleep(1.5)
        await s.compute.start()
        done = await asyncio.gather(*(s.wait_settled(srv.id, timeout=90) for srv in servers))
        assert [d.vm_state for d in done] == [C.VM_STATE_ACTIVE] * 100, \
            [d.fault.message for d in done if d.vm_state != C.VM_STATE_ACTIVE]
        assert sum(a.client.transport_retries for a in s.agents.agents) > 0   # it did hit them
        for d in done:   # no build attempt was spent on the restart
            rec = await s.store.get(keys.instance(d.id), records_pb2.InstanceRecord)
            assert list(rec.msg.tried_hosts) == [] and not rec.msg.server.fault.message


async def test_a_conductor_back_after_the_node_leases_expired_waits_for_the_hosts(
        etcd, tmp_path, qcow2_image):
    """The conductor is down longer than a node TTL: the agents cannot report,
    their nodes expire. A server created meanwhile is not failed with "No
    valid host" by the conductor that comes back: it waits for the agents
    to report again (within two TTLs of taking over) and the server builds."""
    async with Stack(etcd.endpoint, str(tmp_path), hosts=2, node_ttl=2,
                     subprocesses=("conductor",)) as s:
        await s.flavor("m1.tiny")
        await s.image(qcow2_image)
        s.conductor.kill()
        async with asyncio.timeout(30):
            while await s.store.count(keys.NODES):
                await asyncio.sleep(0.2)
        [server] = (await s.api.CreateServer(C.CreateServerRequest(
            name="after", image_ref="cirros", flavor_ref="m1.tiny"),
            metadata=user(project="late"))).servers
        await s.conductor.start()
        done = await s.wait_settled(server.id, timeout=60)
        assert done.vm_state == C.VM_STATE_ACTIVE, done.fault.message
