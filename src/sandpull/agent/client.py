"""``AgentClient``: one async method per Agent RPC, over the agent's ttrpc socket.

async with AgentClient("/run/sandpull/agent.sock") as agent:
    pulled = await agent.pull_image("busybox")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from google.protobuf.message import Message

from sandpull.api import agent_pb2 as pb
from sandpull.ttrpc import Client

SERVICE = "sandpull.agent.v1.Agent"
R = TypeVar("R", bound=Message)


class AgentClient:
    """Connects on first use; ``timeout`` (seconds) applies to every call."""

    def __init__(self, socket_path: str, timeout: float | None = None) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._client: Client | None = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def pull_image(
        self,
        image: str,
        auth: pb.AuthConfig | None = None,
        platform: pb.Platform | None = None,
    ) -> pb.PullImageResponse:
        request = pb.PullImageRequest(image=image, auth=auth, platform=platform)
        return await self._call("PullImage", request, pb.PullImageResponse)

    async def list_images(self) -> pb.ListImagesResponse:
        return await self._call(
            "ListImages", pb.ListImagesRequest(), pb.ListImagesResponse
        )

    async def image_status(self, image: str) -> pb.ImageStatusResponse:
        request = pb.ImageStatusRequest(image=image)
        return await self._call("ImageStatus", request, pb.ImageStatusResponse)

    async def remove_image(self, image: str) -> pb.RemoveImageResponse:
        request = pb.RemoveImageRequest(image=image)
        return await self._call("RemoveImage", request, pb.RemoveImageResponse)

    async def image_fs_info(self) -> pb.ImageFsInfoResponse:
        request = pb.ImageFsInfoRequest()
        return await self._call("ImageFsInfo", request, pb.ImageFsInfoResponse)

    async def create_container(
        self,
        id: str,
        image: str,
        *,
        command: Sequence[str] = (),
        args: Sequence[str] = (),
        env: Sequence[str] = (),
        workdir: str = "",
        user: str = "",
        annotations: Mapping[str, str] | None = None,
    ) -> pb.CreateContainerResponse:
        request = pb.CreateContainerRequest(
            id=id, image=image, command=command, args=args, env=env,
            workdir=workdir, user=user, annotations=annotations or {},
        )  # fmt: skip
        return await self._call("CreateContainer", request, pb.CreateContainerResponse)

    async def start_container(self, id: str) -> pb.StartContainerResponse:
        request = pb.StartContainerRequest(id=id)
        return await self._call("StartContainer", request, pb.StartContainerResponse)

    async def wait_container(self, id: str) -> pb.WaitContainerResponse:
        request = pb.WaitContainerRequest(id=id)
        return await self._call("WaitContainer", request, pb.WaitContainerResponse)

    async def signal_container(
        self, id: str, signal: int
    ) -> pb.SignalContainerResponse:
        request = pb.SignalContainerRequest(id=id, signal=signal)
        return await self._call("SignalContainer", request, pb.SignalContainerResponse)

    async def remove_container(
        self, id: str, force: bool = False
    ) -> pb.RemoveContainerResponse:
        request = pb.RemoveContainerRequest(id=id, force=force)
        return await self._call("RemoveContainer", request, pb.RemoveContainerResponse)

    async def list_containers(self) -> pb.ListContainersResponse:
        request = pb.ListContainersRequest()
        return await self._call("ListContainers", request, pb.ListContainersResponse)

    async def container_logs(
        self,
        id: str,
        stream: pb.LogStream.ValueType = pb.STDOUT,
        offset: int = 0,
        max_bytes: int = 0,
    ) -> pb.ContainerLogsResponse:
        request = pb.ContainerLogsRequest(
            id=id, stream=stream, offset=offset, max_bytes=max_bytes
        )
        return await self._call("ContainerLogs", request, pb.ContainerLogsResponse)

    async def pull_stats(self) -> pb.PullStatsResponse:
        request = pb.PullStatsRequest()
        return await self._call("PullStats", request, pb.PullStatsResponse)

    async def health(self) -> pb.HealthResponse:
        return await self._call("Health", pb.HealthRequest(), pb.HealthResponse)

    async def version(self) -> pb.VersionResponse:
        return await self._call("Version", pb.VersionRequest(), pb.VersionResponse)

    async def _call(self, method: str, request: Message, response_type: type[R]) -> R:
        if self._client is None:
            self._client = await Client.connect_unix(self.socket_path)
        return await self._client.call(
            SERVICE, method, request, response_type, timeout=self.timeout
        )
