// The voice chat page: connect, talk, see the transcripts stream, hang up. No build step.
import { connectWebRTC } from "./rtc.js";
import { connectWebSocket } from "./ws.js";

window.sgv = window.sgv || {}; // test hooks: sgv.pc (WebRTC), sgv.ws, sgv.outputLevel(), sgv.conn

const $ = (id) => document.getElementById(id);
const ui = {
  status: document.querySelector('[data-testid="status"]'),
  banner: $("banner"),
  log: $("conversation"),
  empty: $("empty"),
  connect: $("connect"),
  hangup: $("hangup"),
  mute: $("mute"),
  key: $("api-key"),
  micLevel: $("mic-level"),
  agentLevel: $("agent-level"),
};

let conn = null; // the live transport
let mic = null; // the microphone stream
let meterCtx = null;
let meterTimer = null;
const users = new Map(); // item_id -> user message element
const agents = new Map(); // response_id -> agent message element
const pendingLatency = new Map(); // response_id -> ms, when metrics beat the reply's element

// -- status and messages ---------------------------------------------------------------------------
function setStatus(text, state) {
  ui.status.textContent = text;
  ui.status.dataset.state = state;
}

function banner(text, kind = "error") {
  ui.banner.textContent = text;
  ui.banner.className = `banner ${kind === "info" ? "info" : ""}`;
  ui.banner.hidden = !text;
}

function scrollDown() { ui.log.scrollTop = ui.log.scrollHeight; }

function message(role, { testid, partial = false } = {}) {
  ui.empty.hidden = true;
  const el = document.createElement("div");
  el.className = `msg ${role}${partial ? " partial" : ""}`;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = role === "user" ? "You" : role === "agent" ? "Agent" : "";
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  if (testid) bubble.dataset.testid = testid;
  const meta = document.createElement("div");
  meta.className = "meta";
  if (role !== "note") el.append(who);
  el.append(bubble);
  if (role === "agent") el.append(meta);
  ui.log.append(el);
  scrollDown();
  return el;
}

function note(text, kind = "") {
  const el = message("note");
  if (kind) el.classList.add(kind);
  el.querySelector(".bubble").textContent = text;
}

function userMessage(itemId) {
  let el = users.get(itemId);
  if (!el) {
    el = message("user", { partial: true });
    el.querySelector(".bubble").innerHTML = '<span class="dots"><i></i><i></i><i></i></span>';
    users.set(itemId, el);
  }
  return el;
}

function agentMessage(responseId) {
  let el = agents.get(responseId);
  if (!el) {
    el = message("agent", { testid: "agent-transcript" });
    el.classList.add("streaming");
    agents.set(responseId, el);
    if (pendingLatency.has(responseId)) showLatency(responseId, pendingLatency.get(responseId));
  }
  return el;
}

function showLatency(responseId, ms) {
  const el = agents.get(responseId);
  if (!el) { pendingLatency.set(responseId, ms); return; }
  const meta = el.querySelector(".meta");
  let chip = meta.querySelector('[data-testid="turn-latency"]');
  if (!chip) {
    chip = document.createElement("span");
    chip.className = "latency";
    chip.dataset.testid = "turn-latency";
    chip.title = "Voice-to-voice: from the end of your speech to the first sound of the reply, measured by the server";
    meta.append(chip);
  }
  chip.textContent = `${Math.round(ms)} ms`;
}

// -- protocol events -------------------------------------------------------------------------------
const seen = (window.sgv.events = []); // the last event types, for tests and debugging
function onEvent(ev) {
  seen.push(ev.type);
  if (seen.length > 300) seen.shift();
  switch (ev.type) {
    case "input_audio_buffer.speech_started":
      userMessage(ev.item_id);
      setStatus("Listening…", "user");
      break;
    case "somagent.input_audio_transcription.partial":
      if (ev.text) userMessage(ev.item_id).querySelector(".bubble").textContent = ev.text;
      scrollDown();
      break;
    case "input_audio_buffer.speech_stopped":
      setStatus("Thinking…", "thinking");
      break;
    case "conversation.item.input_audio_transcription.completed": {
      const el = userMessage(ev.item_id);
      const text = (ev.transcript || "").trim();
      if (!text) { el.remove(); users.delete(ev.item_id); break; }
      el.classList.remove("partial");
      const bubble = el.querySelector(".bubble");
      bubble.textContent = text;
      bubble.dataset.testid = "user-transcript";
      scrollDown();
      break;
    }
    case "conversation.item.input_audio_transcription.failed":
      userMessage(ev.item_id).querySelector(".bubble").textContent = "(could not transcribe)";
      break;
    case "response.created":
      agentMessage(ev.response.id);
      break;
    case "response.output_audio_transcript.delta":
    case "response.output_text.delta": {
      const bubble = agentMessage(ev.response_id).querySelector(".bubble");
      bubble.textContent += ev.delta;
      scrollDown();
      break;
    }
    case "response.output_audio_transcript.done":
    case "response.output_text.done": {
      const el = agentMessage(ev.response_id);
      const text = ev.transcript ?? ev.text;
      if (text) el.querySelector(".bubble").textContent = text;
      break;
    }
    case "conversation.item.truncated":
      for (const el of agents.values()) {
        if (el.dataset.itemId === ev.item_id) markInterrupted(el);
      }
      break;
    case "response.output_item.added":
      agentMessage(ev.response_id).dataset.itemId = ev.item.id;
      break;
    case "response.done": {
      const el = agentMessage(ev.response.id);
      el.classList.remove("streaming");
      if (ev.response.status === "cancelled") markInterrupted(el);
      if (!el.querySelector(".bubble").textContent) { el.remove(); agents.delete(ev.response.id); }
      if (ui.status.dataset.state === "thinking") setStatus("Connected — listening", "listening");
      break;
    }
    case "output_audio_buffer.started":
      setStatus("Agent speaking…", "speaking");
      break;
    case "output_audio_buffer.stopped":
    case "output_audio_buffer.cleared":
      if (ui.status.dataset.state === "speaking") setStatus("Connected — listening", "listening");
      break;
    case "somagent.turn.metrics":
      if (ev.response_id && ev.voice_to_voice_ms != null) showLatency(ev.response_id, ev.voice_to_voice_ms);
      break;
    case "error":
      note(`Server: ${ev.error?.message || "error"}`, "error");
      break;
    default:
      break;
  }
}

function markInterrupted(el) {
  if (el.classList.contains("interrupted")) return;
  el.classList.add("interrupted");
  const cut = document.createElement("span");
  cut.className = "cut";
  cut.textContent = "interrupted";
  el.querySelector(".meta").prepend(cut);
}

// -- audio levels ---------------------------------------------------------------------------------
function analyser(stream) {
  meterCtx = meterCtx || new AudioContext();
  const node = meterCtx.createAnalyser();
  node.fftSize = 512;
  meterCtx.createMediaStreamSource(stream).connect(node);
  const buf = new Float32Array(node.fftSize);
  return () => {
    node.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    return Math.sqrt(sum / buf.length);
  };
}

let micMeter = null;
let agentMeter = null;
let agentPeak = 0;
window.sgv.outputLevel = () => agentPeak; // the loudest agent level seen this call (0..1 RMS)

function startMeters() {
  meterCtx?.resume();
  meterTimer = setInterval(() => {
    const m = micMeter ? micMeter() : 0;
    const a = agentMeter ? agentMeter() : 0;
    agentPeak = Math.max(agentPeak, a);
    ui.micLevel.style.width = `${Math.min(100, Math.sqrt(m) * 160)}%`;
    ui.agentLevel.style.width = `${Math.min(100, Math.sqrt(a) * 160)}%`;
  }, 80);
}

let remoteAudio = null;
function onRemoteStream(stream, { playedByContext = false } = {}) {
  if (!playedByContext) {
    remoteAudio = remoteAudio || new Audio();
    remoteAudio.autoplay = true;
    remoteAudio.srcObject = stream;
    remoteAudio.play().catch(() => banner("Click anywhere to let the page play the agent's voice.", "info"));
  }
  agentMeter = analyser(stream);
}

// -- connect / hang up ------------------------------------------------------------------------------
function transport() {
  return document.querySelector('input[name="transport"]:checked').value;
}

async function clientSecret(key) {
  const r = await fetch("/v1/realtime/client_secrets", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ session: { type: "realtime" } }),
  });
  if (!r.ok) {
    let reason = r.status;
    try { reason = (await r.json()).error.message; } catch (_) { /* keep the status */ }
    throw new Error(`The API key was refused: ${reason}`);
  }
  return (await r.json()).value;
}

async function microphone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("This browser cannot use a microphone here (the page needs https or localhost).");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
  } catch (err) {
    if (err.name === "NotAllowedError" || err.name === "SecurityError") {
      throw new Error("Microphone access was denied. Allow the microphone for this site (the icon in the address bar) and press Connect again.");
    }
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      throw new Error("No microphone was found. Plug one in and press Connect again.");
    }
    if (err.name === "NotReadableError") {
      throw new Error("The microphone is busy in another application.");
    }
    throw err;
  }
}

function setConnected(on) {
  ui.connect.disabled = on;
  ui.connect.hidden = on; // one call button at a time: Connect, or Hang up while a call is on
  ui.hangup.hidden = !on;
  ui.hangup.disabled = !on;
  ui.mute.disabled = !on;
  document.querySelectorAll('input[name="transport"], #api-key').forEach((el) => { el.disabled = on; });
}

async function connect() {
  banner("");
  setConnected(true);
  ui.hangup.disabled = true;
  agentPeak = 0;
  try {
    setStatus("Requesting microphone…", "connecting");
    mic = await microphone();
    micMeter = analyser(mic);
    const key = ui.key.value.trim();
    const token = key ? await clientSecret(key) : null;
    setStatus("Connecting…", "connecting");
    const connectTo = transport() === "websocket" ? connectWebSocket : connectWebRTC;
    // somagent.events: live partial transcripts and per-turn latency for this page
    const session = { type: "realtime", somagent: { events: true } };
    conn = await connectTo({ token, mic, session, onEvent, onState, onRemoteStream });
    window.sgv.conn = conn;
    ui.hangup.disabled = false;
    startMeters();
    if (conn.kind === "websocket") setStatus("Connected — listening", "listening");
  } catch (err) {
    console.error(err);
    await teardown();
    setStatus(err.message.startsWith("Microphone") ? "Microphone blocked" : "Could not connect", "error");
    banner(err.message);
  }
}

function onState(state, reason) {
  if (state === "connected") setStatus("Connected — listening", "listening");
  else if (state === "connecting" || state === "new") setStatus("Connecting…", "connecting");
  else if (state === "disconnected") setStatus("Reconnecting…", "connecting"); // ICE may recover by itself
  else if (state === "failed" || state === "closed") {
    const why = state === "failed" ? "The connection failed (a firewall may block WebRTC; try the WebSocket transport)."
      : reason ? `The call ended: ${reason}` : "The call ended.";
    teardown().then(() => {
      setStatus(state === "failed" ? "Connection failed" : "Call ended", state === "failed" ? "error" : "idle");
      if (state !== "closed" || reason) banner(why, state === "failed" ? "error" : "info");
    });
  }
}

async function teardown({ beacon = false } = {}) {
  const c = conn;
  conn = null;
  clearInterval(meterTimer);
  meterTimer = null;
  if (c) await c.close({ beacon });
  mic?.getTracks().forEach((t) => t.stop());
  mic = null;
  micMeter = null;
  agentMeter = null;
  ui.micLevel.style.width = ui.agentLevel.style.width = "0";
  setMuted(false);
  setConnected(false);
}

async function hangup() {
  await teardown();
  setStatus("Call ended", "idle");
  note("Call ended.");
}

function setMuted(m) {
  ui.mute.setAttribute("aria-pressed", String(m));
  ui.mute.querySelector(".label").textContent = m ? "Unmute" : "Mute";
  conn?.setMuted(m);
}

setConnected(false);
ui.connect.addEventListener("click", connect);
ui.hangup.addEventListener("click", hangup);
ui.mute.addEventListener("click", () => setMuted(ui.mute.getAttribute("aria-pressed") !== "true"));
document.addEventListener("click", () => { remoteAudio?.play().catch(() => {}); meterCtx?.resume(); });
window.addEventListener("pagehide", () => { if (conn) teardown({ beacon: true }); });
