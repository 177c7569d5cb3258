"""WebRTC calls, as in OpenAI's Realtime WebRTC flow: `POST /v1/realtime/calls` with an SDP offer, the answer back.

One call is one Realtime session on the same loop and protocol as the WebSocket:

- the caller's microphone track (Opus, decoded by aiortc) is mixed to mono and fed to `session.push_pcm`;
- the agent's voice goes out on an audio track paced in 20 ms frames at 48 kHz (silence when idle): the
  session's output format is pinned to `audio/pcm` 48 kHz, and its `response.output_audio.delta` events are
  decoded onto the track instead of being sent as events;
- every other server event travels as JSON text on the `oai-events` DataChannel, and every text message on it
  is a client event, exactly as on `/v1/realtime`. Like OpenAI we add `output_audio_buffer.started|stopped|cleared`
  when playback starts, drains, or is flushed; a cancelled response (barge-in) or a client's
  `output_audio_buffer.clear` drops everything queued on the track at once.

A hang-up (`POST /v1/realtime/calls/{id}/hangup` or `DELETE`), ICE/DTLS failure, or the peer closing the
connection (a closed tab) ends the session and frees the peer connection, tasks and tracks.

ICE uses host candidates only unless `SOMAGENT_ICE_SERVERS` names STUN/TURN servers (a JSON list of URLs or
`{"urls", "username", "credential"}` objects, or comma-separated URLs); `GET /v1/realtime/webrtc_config`
hands the same list to the page.

The package, one module per concern: `offer` (reading and checking the SDP offer), `ice` (ICE servers and the
peer connections' configuration), `track` (the agent's outbound track, caller frames as PCM), `call` (one
call), `sideband` (an app server's WebSocket on a call, `/v1/realtime?call_id=`), `registry` (all calls of an
app) and `routes` (the HTTP endpoints). Refusals are
`voice.api_errors.ApiError`, the app's one HTTP error type.
"""
