"""A registry inside a tenant network serves only the sandboxes on that network."""

from __future__ import annotations

import pytest

from tests.mainjob.conftest import Env, PrivateRegistry
from tests.mainjob.images import app_image

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_sandbox_on_the_tenant_network_pulls_from_its_private_registry(
    env: Env, private_registry: PrivateRegistry
) -> None:
    pushed = private_registry.push("tenant/app", app_image())
    sandbox = env.create(
        f"tenant:{private_registry.network}", registry=private_registry
    )

    done = env.cli("pull", "--sandbox", sandbox.name, pushed.ref)

    assert done.returncode == 0, done.stderr
    reference, image_id = done.stdout.split()
    assert reference == pushed.ref
    assert image_id == str(app_image().config_digest)
    assert f"pulled {pushed.ref}@{pushed.digest}" in done.stderr
    listed = env.cli("images", "--sandbox", sandbox.name, "--json")
    assert pushed.ref in listed.stdout


@pytest.mark.parametrize(
    "where",
    ["host", "bridge"],
    ids=[
        "the host store cannot pull from a tenant's private registry",
        "a sandbox on the bridge network cannot pull from it either",
    ],
)
def test_pull_from_outside_the_tenant_network_fails_naming_the_registry(
    env: Env, private_registry: PrivateRegistry, where: str, tmp_path: object
) -> None:
    pushed = private_registry.push("tenant/app", app_image())
    config = str(private_registry.registries_config)
    if where == "host":
        args = ["--root", f"{tmp_path}/store", "--config", config]
    else:
        sandbox = env.create("bridge", registry=private_registry)
        args = ["--sandbox", sandbox.name]

    done = env.cli("pull", *args, pushed.ref, timeout=120)

    # Off the tenant network the address leads nowhere: the host holds an
    # unreachable route for the tenant's subnet, so the connection fails at once
    # (14, unavailable) and no packet for it leaves the machine.
    assert done.returncode == 14, done.stderr
    assert done.stderr.startswith("error: ")
    assert private_registry.host in done.stderr
