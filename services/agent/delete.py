"""Delete (nova-compute's terminate_instance), and the clean-up a failed or
interrupted build shares with it."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from nimbus import crashpoints
from nimbus.compute.v1 import compute_pb2

if TYPE_CHECKING:
    from nimbus.services.agent.agent import ComputeAgent


async def cleanup(agent: "ComputeAgent", instance_id: str, keep_claim: bool = False) -> None:
    """Undo a build or finish a delete: domain, disks (local or RBD, config
    drive included), instance dir (and a move's `_resize`), and the node's claim unless `keep_claim`
    (a spawn about to be tried again). Idempotent."""
    inst_dir = agent.driver.instance_dir(instance_id)
    await agent.driver.destroy(instance_id)
    await agent.backend.remove_disks(instance_id, inst_dir)
    shutil.rmtree(inst_dir, ignore_errors=True)
    shutil.rmtree(inst_dir + "_resize", ignore_errors=True)   # a move's source copy
    if not keep_claim:
        agent.tracker.drop(instance_id)


async def delete(agent: "ComputeAgent", server: compute_pb2.Server) -> None:
    # A build that was in flight has finished by now (the agent waits for
    # the work it replaces): it noticed DELETING at its next update.
    await cleanup(agent, server.id)
    crashpoints.reach("agent:delete:cleaned")
    await agent.client.finish_delete(server.id)
    agent.log.info("server deleted", instance_id=server.id)
