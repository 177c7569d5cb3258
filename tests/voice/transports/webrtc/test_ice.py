"""voice/transports/webrtc/ice.py: the ICE servers setting."""

from __future__ import annotations

import pytest

from voice.transports.webrtc.ice import parse_ice_servers, rtc_configuration


def test_ice_servers_setting():
    assert parse_ice_servers("") == []
    assert parse_ice_servers("stun:stun.example.org:3478, turn:turn.example.org") == [
        {"urls": "stun:stun.example.org:3478"}, {"urls": "turn:turn.example.org"}]
    assert parse_ice_servers('[{"urls": ["turn:t.example.org"], "username": "u", "credential": "c"}]') == [
        {"urls": ["turn:t.example.org"], "username": "u", "credential": "c"}]
    with pytest.raises(ValueError):
        parse_ice_servers("http://not-ice.example.org")
    with pytest.raises(ValueError):
        parse_ice_servers("[not json")
    assert rtc_configuration([]).iceServers == []  # never None: aiortc would fall back to a public STUN server
