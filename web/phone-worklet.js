// The softphone's audio threads. The page runs its AudioContext at 8 kHz, so the
// browser resamples the microphone and the speaker; these only frame and buffer.

// Microphone -> 20 ms frames (160 samples) of 16-bit PCM, posted to the page.
class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(160);
    this.n = 0;
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      const v = Math.max(-1, Math.min(1, ch[i]));
      this.frame[this.n++] = v < 0 ? v * 0x8000 : v * 0x7fff;
      if (this.n === this.frame.length) {
        this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
        this.frame = new Int16Array(160);
        this.n = 0;
      }
    }
    return true;
  }
}

// The bot's audio with a small jitter buffer: playback starts once 60 ms are queued
// (or a mark closes a sentence) and starts over after an underrun. A mark is posted
// back when playback reaches it: the caller has heard everything before it. "clear"
// drops the queue at once (barge-in); its marks are echoed, as a carrier does.
class Player extends AudioWorkletProcessor {
  constructor() {
    super();
    this.q = []; // {pcm: Float32Array, off} or {mark: name}
    this.queued = 0; // samples
    this.playing = false;
    this.prebuffer = 480;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.pcm) {
        const f = new Float32Array(m.pcm.length);
        for (let i = 0; i < f.length; i++) f[i] = m.pcm[i] / 32768;
        this.q.push({ pcm: f, off: 0 });
        this.queued += f.length;
      } else if (m.mark !== undefined) {
        this.q.push({ mark: m.mark });
      } else if (m.clear) {
        for (const item of this.q) if (item.mark !== undefined) this.port.postMessage({ mark: item.mark });
        this.q = [];
        this.queued = 0;
        this.playing = false;
      }
    };
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    const last = this.q[this.q.length - 1];
    if (!this.playing && (this.queued >= this.prebuffer || (last && last.mark !== undefined))) this.playing = true;
    while (this.q.length && i < out.length) {
      const head = this.q[0];
      if (head.mark !== undefined) {
        this.port.postMessage({ mark: head.mark });
        this.q.shift();
        continue;
      }
      if (!this.playing) break;
      const n = Math.min(out.length - i, head.pcm.length - head.off);
      out.set(head.pcm.subarray(head.off, head.off + n), i);
      i += n;
      head.off += n;
      this.queued -= n;
      if (head.off === head.pcm.length) this.q.shift();
    }
    if (this.playing && !this.q.length) this.playing = false; // underrun: buffer again
    out.fill(0, i);
    return true;
  }
}

registerProcessor("capture", Capture);
registerProcessor("player", Player);
