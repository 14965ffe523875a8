// The softphone page: microphone -> /phone/ws -> the bot, and back.
"use strict";
const $ = (sel) => document.querySelector(sel);
let ws = null, ctx = null, micStream = null, player = null;
const latencies = {}; // turn -> ms, until that turn's bot line exists

// Two things the page shows: the call (idle, connecting, in-call, ended: body[data-call])
// and, in a call, who has the floor (the server's phase: listening, thinking, speaking:
// body[data-state]). "connecting" lasts until the server's first message (the greeting).
function pill() {
  const call = document.body.dataset.call, phase = document.body.dataset.state;
  const text = { idle: "idle", connecting: "connecting…", ended: "call ended" }[call];
  $("#state").textContent = text || (["listening", "thinking", "speaking"].includes(phase) ? `in call · ${phase}` : "in call");
}

function setCall(c) {
  document.body.dataset.call = c;
  for (const b of document.querySelectorAll("#keypad button")) b.disabled = c !== "in-call";
  pill();
}

function setState(s) {
  document.body.dataset.state = s;
  pill();
}

function live() {
  if (document.body.dataset.call === "connecting") setCall("in-call");
}

function line(role, turn) {
  if (turn !== null && turn !== undefined) {
    const found = document.querySelector(`#transcript .line[data-role="${role}"][data-turn="${turn}"]`);
    if (found) return found;
  }
  const el = document.createElement("div");
  el.className = "line";
  el.dataset.role = role;
  if (turn !== null && turn !== undefined) el.dataset.turn = String(turn);
  $("#transcript").appendChild(el);
  return el;
}

function transcript(m) {
  const el = line(m.role, m.turn);
  // a caller line is replaced (a speculative turn's words give way to the final ones);
  // a bot turn's sentences join one line
  el.textContent = m.role === "bot" && el.textContent ? `${el.textContent} ${m.text}` : m.text;
  if (m.role === "bot" && latencies[m.turn] !== undefined) el.dataset.latency = latencies[m.turn];
}

function latency(m) {
  latencies[m.turn] = m.ms;
  const el = document.querySelector(`#transcript .line[data-role="bot"][data-turn="${m.turn}"]`);
  if (el) el.dataset.latency = m.ms;
}

function onMessage(e) {
  live();
  if (typeof e.data !== "string") {
    player.port.postMessage({ pcm: new Int16Array(e.data) });
    return;
  }
  const m = JSON.parse(e.data);
  if (m.type === "mark") player.port.postMessage({ mark: m.name });
  else if (m.type === "clear") player.port.postMessage({ clear: true });
  else if (m.type === "state" && m.state !== "ended") setState(m.state);
  else if (m.type === "transcript") transcript(m);
  else if (m.type === "latency") latency(m);
  else if (m.type === "end" && m.reason === "busy") $("#note").textContent = "All lines are busy; try again in a minute.";
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(obj instanceof ArrayBuffer ? obj : JSON.stringify(obj));
}

async function start() {
  $("#call").disabled = true;
  $("#note").textContent = "";
  $("#transcript").replaceChildren();
  setState("connecting");
  setCall("connecting");
  try {
    ctx = new AudioContext({ sampleRate: 8000 });
    await ctx.audioWorklet.addModule("/phone/phone-worklet.js");
    micStream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const capture = new AudioWorkletNode(ctx, "capture", { numberOfInputs: 1, numberOfOutputs: 0 });
    player = new AudioWorkletNode(ctx, "player", { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
    player.connect(ctx.destination);
    ctx.createMediaStreamSource(micStream).connect(capture);
    await ctx.resume();
    ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/phone/ws`);
    ws.binaryType = "arraybuffer";
    capture.port.onmessage = (e) => send(e.data);
    player.port.onmessage = (e) => { if (e.data.mark !== undefined) send({ type: "mark", name: e.data.mark }); };
    ws.onmessage = onMessage;
    ws.onopen = () => { $("#hangup").disabled = false; };
    ws.onclose = end;
  } catch (err) {
    const why = err && err.name === "NotAllowedError" ? "the microphone was not allowed" : (err && err.name) || String(err);
    $("#note").textContent = `Could not start: ${why}.`;
    end();
  }
}

function end() {
  setState("ended");
  setCall(document.body.dataset.call === "idle" ? "idle" : "ended");
  $("#hangup").disabled = true;
  $("#call").disabled = false;
  if (micStream) micStream.getTracks().forEach((t) => t.stop());
  if (ctx && ctx.state !== "closed") ctx.close();
  micStream = ctx = null;
}

$("#call").onclick = start;
$("#hangup").onclick = () => { send({ type: "hangup" }); if (ws) ws.close(); };
for (const d of "123456789*0#") { // a 3x4 grid (web/static/phone.css), usable only in a call
  const b = document.createElement("button");
  b.textContent = d;
  b.setAttribute("aria-label", `key ${d}`);
  b.onclick = () => send({ type: "dtmf", digit: d });
  $("#keypad").appendChild(b);
}
setCall("idle");
if (new URLSearchParams(location.search).get("autostart") === "1") start();
