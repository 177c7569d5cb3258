// WebRTC transport: microphone track out, the agent's voice back on a track, Realtime events on "oai-events".

const GATHER_TIMEOUT_MS = 3000;

async function iceServers(token) {
  try {
    const r = await fetch("/v1/realtime/webrtc_config", { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    if (r.ok) return (await r.json()).ice_servers || [];
  } catch (_) { /* host candidates only */ }
  return [];
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); clearTimeout(timer); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, GATHER_TIMEOUT_MS); // bounded: send what we have
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export async function connectWebRTC({ token, mic, session, onEvent, onState, onRemoteStream }) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers(token) });
  window.sgv.pc = pc; // for tests and the curious: pc.getStats() shows what arrives
  const micTrack = mic.getAudioTracks()[0];
  pc.addTrack(micTrack, mic);
  const dc = pc.createDataChannel("oai-events");
  const pending = [];
  let callId = null;
  let closed = false;

  dc.addEventListener("open", () => {
    if (session) dc.send(JSON.stringify({ type: "session.update", session }));
    while (pending.length) dc.send(pending.shift());
  });
  dc.addEventListener("close", () => { if (!closed) onState("closed", "the server ended the call"); });
  dc.addEventListener("message", (e) => {
    try { onEvent(JSON.parse(e.data)); } catch (err) { console.warn("bad event", err); }
  });
  pc.addEventListener("track", (e) => onRemoteStream(e.streams[0] || new MediaStream([e.track])));
  pc.addEventListener("connectionstatechange", () => { if (!closed) onState(pc.connectionState); });

  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch("/v1/realtime/calls", { method: "POST", body: pc.localDescription.sdp, headers });
  if (!r.ok) {
    pc.close();
    let reason = `${r.status}`;
    try { reason = (await r.json()).error.message; } catch (_) { /* keep the status */ }
    throw new Error(`The server refused the call: ${reason}`);
  }
  callId = (r.headers.get("Location") || "").split("/").pop() || null;
  await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });

  const hangupUrl = callId ? `/v1/realtime/calls/${callId}/hangup` : null;
  return {
    kind: "webrtc",
    pc,
    send(event) {
      const text = JSON.stringify(event);
      if (dc.readyState === "open") dc.send(text); else pending.push(text);
    },
    setMuted(muted) { micTrack.enabled = !muted; },
    async close({ beacon = false } = {}) {
      if (closed) return;
      closed = true;
      if (hangupUrl) {
        if (beacon && navigator.sendBeacon) navigator.sendBeacon(hangupUrl);
        else fetch(hangupUrl, { method: "POST", headers: token ? { Authorization: `Bearer ${token}` } : {} }).catch(() => {});
      }
      try { dc.close(); } catch (_) { /* already closed */ }
      pc.close();
    },
  };
}
