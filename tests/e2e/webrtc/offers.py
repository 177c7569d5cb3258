"""A local aiortc peer's SDP offer, for the tests that post offers to a running server."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection


async def make_offer(*, audio: bool = True, channel: bool = True) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    if channel:
        pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp
