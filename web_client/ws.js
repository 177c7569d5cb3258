// WebSocket transport, for networks where WebRTC is blocked: the microphone through an AudioWorklet as 24 kHz
// PCM16 `input_audio_buffer.append` events, the agent's `response.output_audio.delta`s played by an AudioContext.

const RATE = 24000;

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(b64) {
  const s = atob(b64);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return new Int16Array(bytes.buffer, 0, bytes.length >> 1);
}

// Plays PCM16 chunks back to back; `flush()` silences everything scheduled (barge-in).
class Player {
  constructor(ctx, destination) {
    this.ctx = ctx;
    this.destination = destination;
    this.sources = new Set();
    this.playHead = 0;
  }

  play(pcm) {
    const buffer = this.ctx.createBuffer(1, pcm.length, RATE);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
    const src = this.ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(this.destination);
    const now = this.ctx.currentTime;
    if (this.playHead < now + 0.02) this.playHead = now + 0.05; // a little slack after an underrun
    src.start(this.playHead);
    this.playHead += buffer.duration;
    this.sources.add(src);
    src.onended = () => this.sources.delete(src);
  }

  get busy() { return this.sources.size > 0; }

  flush() {
    for (const src of this.sources) { try { src.stop(); } catch (_) { /* not started */ } }
    this.sources.clear();
    this.playHead = 0;
  }
}

export async function connectWebSocket({ token, mic, session, onEvent, onState, onRemoteStream }) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/realtime`;
  const protocols = ["realtime"];
  if (token) protocols.push(`openai-insecure-api-key.${token}`);
  const ws = new WebSocket(url, protocols);
  window.sgv.ws = ws;
  const opened = new Promise((resolve, reject) => { // listen now: it may open while the audio graph is built
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error("The WebSocket connection failed")), { once: true });
    ws.addEventListener("close", (e) => reject(new Error(e.reason || `The server closed the connection (${e.code})`)), { once: true });
  });
  const early = []; // events that arrive before the handler below is in place
  const keep = (e) => early.push(e);
  ws.addEventListener("message", keep);

  const ctx = new AudioContext();
  window.sgv.audioContext = ctx;
  window.sgv.chunksSent = 0;
  ctx.resume().catch(() => {}); // created after an await: make sure it runs
  await ctx.audioWorklet.addModule("/static/worklet.js");
  const out = ctx.createGain();
  out.connect(ctx.destination);
  const tap = ctx.createMediaStreamDestination(); // so the page can meter the agent's voice like WebRTC's
  out.connect(tap);
  onRemoteStream(tap.stream, { playedByContext: true });
  const player = new Player(ctx, out);

  const source = ctx.createMediaStreamSource(mic);
  const capture = new AudioWorkletNode(ctx, "pcm-capture", { processorOptions: { targetRate: RATE } });
  const sink = ctx.createGain();
  sink.gain.value = 0;
  source.connect(capture);
  capture.connect(sink);
  sink.connect(ctx.destination); // keeps the worklet pulled
  let muted = false;
  capture.port.onmessage = (e) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const pcm = muted ? new Int16Array(e.data.byteLength >> 1) : e.data; // silence keeps turn-taking going
    ws.send(JSON.stringify({ type: "input_audio_buffer.append", audio: toBase64(pcm.buffer || pcm) }));
    window.sgv.chunksSent += 1;
  };

  let closed = false;
  try {
    await opened;
  } catch (err) {
    await ctx.close().catch(() => {});
    throw err;
  }
  onState("connected");
  ws.addEventListener("close", (e) => { if (!closed) onState("closed", e.reason); });

  let playing = null;
  const handle = (e) => {
    let event;
    try { event = JSON.parse(e.data); } catch (_) { return; }
    if (event.type === "response.output_audio.delta") {
      player.play(fromBase64(event.delta));
      if (playing !== event.response_id) {
        playing = event.response_id;
        onEvent({ type: "output_audio_buffer.started", response_id: playing });
      }
      return; // audio is played, not shown
    }
    const cut = (event.type === "response.done" && event.response.status === "cancelled")
      || event.type === "conversation.item.truncated";
    if (cut && player.busy) {
      player.flush();
      onEvent({ type: "output_audio_buffer.cleared", response_id: playing });
      playing = null;
    }
    onEvent(event);
  };
  ws.removeEventListener("message", keep);
  early.forEach(handle);
  ws.addEventListener("message", handle);
  const idle = setInterval(() => {
    if (playing && !player.busy) {
      onEvent({ type: "output_audio_buffer.stopped", response_id: playing });
      playing = null;
    }
  }, 100);

  // PCM16 at 24 kHz both ways (the defaults, stated so that a changed default cannot surprise us).
  ws.send(JSON.stringify({ type: "session.update", session: { ...(session || { type: "realtime" }), audio: {
    input: { format: { type: "audio/pcm", rate: RATE } }, output: { format: { type: "audio/pcm", rate: RATE } } } } }));

  return {
    kind: "websocket",
    ws,
    send(event) { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(event)); },
    setMuted(m) { muted = m; },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(idle);
      player.flush();
      try { ws.close(1000, "hang-up"); } catch (_) { /* already closed */ }
      try { source.disconnect(); capture.disconnect(); } catch (_) { /* gone */ }
      await ctx.close().catch(() => {});
    },
  };
}
