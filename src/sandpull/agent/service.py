"""The agent's ttrpc service, ``sandpull.agent.v1.Agent``.

Each handler translates one request into calls on the image store and the
container manager and back; errors travel as sandpull errors (and so as status
codes). Credentials given to PullImage are remembered, in memory only, per
image reference so that CreateContainer can pull the same image again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from sandpull import __version__
from sandpull.agent.accounting import PullAccounting
from sandpull.agent.containers import Containers, ContainerSpec
from sandpull.agent.images import ImageRecord, ImageStore
from sandpull.api import agent_pb2 as pb
from sandpull.errors import InvalidArgument, NotFound
from sandpull.oci import Platform, Reference
from sandpull.oci.runtime import ProcessOverrides
from sandpull.registry.credentials import Credential, canonical_host
from sandpull.ttrpc import Context, Method, Server

log = logging.getLogger(__name__)

SERVICE = "sandpull.agent.v1.Agent"
API_VERSION = "v1"


class AgentService:
    def __init__(self, store: ImageStore, accounting: PullAccounting) -> None:
        self.store = store
        self.accounting = accounting
        self.containers = Containers(store.root, self._ensure_image, self._layers)
        self._credentials: dict[str, Credential] = {}

    def register(self, server: Server) -> None:
        """Add every Agent RPC to ``server``."""
        server.register(SERVICE, self.methods())

    def methods(self) -> dict[str, Method]:
        return {
            "PullImage": Method(pb.PullImageRequest, self.pull_image),
            "ListImages": Method(pb.ListImagesRequest, self.list_images),
            "ImageStatus": Method(pb.ImageStatusRequest, self.image_status),
            "RemoveImage": Method(pb.RemoveImageRequest, self.remove_image),
            "ImageFsInfo": Method(pb.ImageFsInfoRequest, self.image_fs_info),
            "CreateContainer": Method(pb.CreateContainerRequest, self.create_container),
            "StartContainer": Method(pb.StartContainerRequest, self.start_container),
            "WaitContainer": Method(pb.WaitContainerRequest, self.wait_container),
            "SignalContainer": Method(pb.SignalContainerRequest, self.signal_container),
            "RemoveContainer": Method(pb.RemoveContainerRequest, self.remove_container),
            "ListContainers": Method(pb.ListContainersRequest, self.list_containers),
            "ContainerLogs": Method(pb.ContainerLogsRequest, self.container_logs),
            "PullStats": Method(pb.PullStatsRequest, self.pull_stats),
            "Health": Method(pb.HealthRequest, self.health),
            "Version": Method(pb.VersionRequest, self.version),
        }

    async def close(self) -> None:
        await self.containers.close()

    # Images.

    async def pull_image(
        self, request: pb.PullImageRequest, ctx: Context
    ) -> pb.PullImageResponse:
        ref = Reference.parse(request.image)
        credential = _credential(ref, request.auth)
        pulled = await self.store.pull(ref, _platform(request.platform), credential)
        if credential is not None:
            self._credentials[str(ref)] = credential
        return pb.PullImageResponse(
            image_id=str(pulled.image_id),
            manifest_digest=str(pulled.manifest_digest),
            repo_digest=str(pulled.repo_digest),
            bytes_fetched=pulled.bytes_fetched,
        )

    async def list_images(
        self, request: pb.ListImagesRequest, ctx: Context
    ) -> pb.ListImagesResponse:
        records = await self.store.list_images()
        by_id: dict[str, list[ImageRecord]] = defaultdict(list)
        for record in records:
            by_id[str(record.image_id)].append(record)
        return pb.ListImagesResponse(images=[_image(group) for group in by_id.values()])

    async def image_status(
        self, request: pb.ImageStatusRequest, ctx: Context
    ) -> pb.ImageStatusResponse:
        ref = Reference.parse(request.image)
        try:
            record = await self.store.get(ref)
        except NotFound:
            return pb.ImageStatusResponse()
        return pb.ImageStatusResponse(image=_image([record]))

    async def remove_image(
        self, request: pb.RemoveImageRequest, ctx: Context
    ) -> pb.RemoveImageResponse:
        ref = Reference.parse(request.image)
        try:
            await self.store.remove(ref)
        except NotFound:
            log.debug("remove image %s: not there", ref)
        return pb.RemoveImageResponse()

    async def image_fs_info(
        self, request: pb.ImageFsInfoRequest, ctx: Context
    ) -> pb.ImageFsInfoResponse:
        usage = await self.store.fs_usage()
        return pb.ImageFsInfoResponse(
            mountpoint=str(self.store.root),
            used_bytes=usage.used_bytes,
            inodes_used=usage.inodes_used,
        )

    # Containers.

    async def create_container(
        self, request: pb.CreateContainerRequest, ctx: Context
    ) -> pb.CreateContainerResponse:
        spec = ContainerSpec(
            id=request.id,
            image=Reference.parse(request.image),
            overrides=ProcessOverrides(
                command=tuple(request.command),
                args=tuple(request.args),
                env=tuple(request.env),
                workdir=request.workdir,
                annotations=dict(request.annotations),
            ),
            user=request.user,
        )
        container = await self.containers.create(spec)
        return pb.CreateContainerResponse(id=container.id, bundle=str(container.bundle))

    async def start_container(
        self, request: pb.StartContainerRequest, ctx: Context
    ) -> pb.StartContainerResponse:
        container = await self.containers.start(request.id)
        return pb.StartContainerResponse(pid=container.pid)

    async def wait_container(
        self, request: pb.WaitContainerRequest, ctx: Context
    ) -> pb.WaitContainerResponse:
        container = await self.containers.wait(request.id)
        return pb.WaitContainerResponse(exit_status=container.exit_status)

    async def signal_container(
        self, request: pb.SignalContainerRequest, ctx: Context
    ) -> pb.SignalContainerResponse:
        if not 0 < request.signal < 65:
            raise InvalidArgument(f"signal container {request.id}: bad signal number")
        await self.containers.signal(request.id, request.signal)
        return pb.SignalContainerResponse()

    async def remove_container(
        self, request: pb.RemoveContainerRequest, ctx: Context
    ) -> pb.RemoveContainerResponse:
        await self.containers.remove(request.id, force=request.force)
        return pb.RemoveContainerResponse()

    async def list_containers(
        self, request: pb.ListContainersRequest, ctx: Context
    ) -> pb.ListContainersResponse:
        return pb.ListContainersResponse(
            containers=[
                pb.Container(
                    id=c.id,
                    image=str(c.spec.image),
                    image_id=c.image_id,
                    state=pb.ContainerState.ValueType(int(c.state)),
                    pid=c.pid,
                    exit_status=c.exit_status,
                    created_at_unix_nano=int(c.created_at * 1e9),
                    annotations=dict(c.spec.overrides.annotations),
                )
                for c in self.containers.list()
            ]
        )

    async def container_logs(
        self, request: pb.ContainerLogsRequest, ctx: Context
    ) -> pb.ContainerLogsResponse:
        stream = "stderr" if request.stream == pb.STDERR else "stdout"
        data, next_offset, eof = self.containers.read_log(
            request.id, stream, request.offset, request.max_bytes
        )
        return pb.ContainerLogsResponse(data=data, next_offset=next_offset, eof=eof)

    # The agent itself.

    async def pull_stats(
        self, request: pb.PullStatsRequest, ctx: Context
    ) -> pb.PullStatsResponse:
        return pb.PullStatsResponse(
            registries=[
                pb.RegistryBytes(registry=r, bytes=n)
                for r, n in sorted(self.accounting.by_registry().items())
            ],
            images=[
                pb.ImageBytes(registry=i.registry, image=i.image, bytes=i.bytes)
                for i in self.accounting.by_image()
            ],
            total_bytes=self.accounting.total(),
        )

    async def health(
        self, request: pb.HealthRequest, ctx: Context
    ) -> pb.HealthResponse:
        return pb.HealthResponse(status=pb.HealthResponse.SERVING)

    async def version(
        self, request: pb.VersionRequest, ctx: Context
    ) -> pb.VersionResponse:
        return pb.VersionResponse(
            agent_version=__version__,
            api_version=API_VERSION,
            runtime_version=await self.containers.runc.version(),
        )

    # Helpers of the container manager.

    async def _ensure_image(self, ref: Reference) -> ImageRecord:
        try:
            return await self.store.get(ref)
        except NotFound:
            log.info("image %s not present: pulling before create", ref)
        await self.store.pull(ref, None, self._credentials.get(str(ref)))
        return await self.store.get(ref)

    async def _layers(self, image: ImageRecord) -> list[Path]:
        return list(await self.store.snapshot_dirs(image))


def _credential(ref: Reference, auth: pb.AuthConfig) -> Credential | None:
    """The credential in ``auth``, or None when it carries none."""
    if auth.server_address and canonical_host(auth.server_address) != ref.registry:
        raise InvalidArgument(
            f"pull image {ref}: credentials are for registry "
            f"{canonical_host(auth.server_address)}"
        )
    if auth.auth and not auth.username:
        return Credential.from_auth(auth.auth)
    fields = (auth.username, auth.password, auth.identity_token, auth.registry_token)
    if not any(fields):
        return None
    return Credential(
        username=auth.username or None,
        password=auth.password or None,
        identity_token=auth.identity_token or None,
        registry_token=auth.registry_token or None,
    )


def _platform(platform: pb.Platform) -> Platform | None:
    if not (platform.os or platform.architecture or platform.variant):
        return None
    if not platform.os or not platform.architecture:
        raise InvalidArgument("pull image: platform needs os and architecture")
    return Platform(platform.os, platform.architecture, platform.variant).normalized()


def _image(records: list[ImageRecord]) -> pb.Image:
    first = records[0]
    return pb.Image(
        id=str(first.image_id),
        repo_tags=sorted({str(r.reference) for r in records}),
        repo_digests=sorted({str(r.repo_digest) for r in records}),
        size=first.size,
        manifest_digest=str(first.manifest_digest),
        platform=pb.Platform(
            os=first.platform.os,
            architecture=first.platform.architecture,
            variant=first.platform.variant,
        ),
    )
