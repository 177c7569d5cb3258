// AudioWorklet: the microphone as 20 ms chunks of 24 kHz PCM16 for the WebSocket transport.
// `sampleRate` is the context's rate (often 48000); a moving-average low-pass and linear interpolation bring it
// to the target rate, which is plenty for speech.

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.target = (options.processorOptions && options.processorOptions.targetRate) || 24000;
    this.ratio = sampleRate / this.target;
    this.taps = Math.max(1, Math.round(this.ratio));
    this.history = new Float32Array(this.taps);
    this.hpos = 0;
    this.hsum = 0;
    this.prev = 0; // the last filtered sample of the previous block
    this.pos = 0; // fractional read position into the filtered stream, relative to `prev`
    this.size = Math.round(this.target * 0.02);
    this.chunk = new Int16Array(this.size);
    this.fill = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || !input[0]) return true;
    const channel = input[0];
    const filtered = new Float32Array(channel.length);
    for (let i = 0; i < channel.length; i++) {
      this.hsum += channel[i] - this.history[this.hpos];
      this.history[this.hpos] = channel[i];
      this.hpos = (this.hpos + 1) % this.taps;
      filtered[i] = this.hsum / this.taps;
    }
    // Output sample k sits at `pos` in a stream that is [prev, ...filtered].
    while (this.pos < filtered.length) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = i === 0 ? this.prev : filtered[i - 1];
      const b = filtered[i];
      const s = Math.max(-1, Math.min(1, a + (b - a) * frac));
      this.chunk[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.fill === this.size) {
        this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]); // transferred: detached here
        this.chunk = new Int16Array(this.size);
        this.fill = 0;
      }
      this.pos += this.ratio;
    }
    this.pos -= filtered.length;
    this.prev = filtered[filtered.length - 1];
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
