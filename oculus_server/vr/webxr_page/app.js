// WebXR teleoperation page: streams both controllers' grip poses (relative to the head) and their
// gamepads to the daemon every XR frame, and shows what the daemon sees (link, rate, arm, recording)
// on the page and, in the headset, on a head-locked panel. Plain ES module, no build step.
// Message format: oculus_server/vr/webxr_frames.py.

const params = new URLSearchParams(location.search);
const token = params.get('token') || '';
const $ = (id) => document.getElementById(id);
const RECONNECT_MS = 1000;
const MAX_BUFFERED = 4096; // bytes waiting in the socket: skip frames rather than queue them

let ws = null;
let seq = 0;
let session = null;
let viewerSpace = null;
let localSpace = null;
let gl = null;
let hud = null;
let status = null; // the daemon's last status message

function setText(id, text) { const el = $(id); if (el.textContent !== text) el.textContent = text; }

function connect() {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  ws = new WebSocket(`${proto}://${location.host}/ws?token=${encodeURIComponent(token)}`);
  ws.onopen = () => {
    document.body.dataset.link = 'connected';
    setText('st-ws', 'connected');
    setText('st-error', '');
    ws.send(JSON.stringify({ type: 'hello', agent: navigator.userAgent }));
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.type === 'status') { status = msg; window.__status = msg; showStatus(msg); }
  };
  ws.onclose = (ev) => {
    document.body.dataset.link = 'disconnected';
    status = null;
    setText('st-ws', 'not connected (retrying)');
    if (ev.code === 1006 || ev.code === 4409) {
      setText('st-error', 'The daemon refused this page: wrong token, or another page is already connected.');
    }
    setTimeout(connect, RECONNECT_MS);
  };
}

function showStatus(m) {
  setText('st-rate', `${m.rate_hz.toFixed(0)} Hz (${m.link})`);
  const arm = m.engaged === undefined ? '–' : m.engaged ? 'FOLLOWS (deadman held)' : `holding${m.held ? ': ' + m.held : ''}`;
  setText('st-arm', arm);
  setText('st-rec', m.recording === undefined ? '–' : m.recording ? `RECORDING${m.success ? ' (success)' : ''}` : 'off');
  setText('st-drops', `${m.late} / ${m.out_of_order} / ${m.rejected}`);
  document.body.dataset.arm = m.engaged ? 'engaged' : 'holding';
  document.body.dataset.recording = String(!!m.recording);
  document.body.dataset.rate = String(m.rate_hz);
  if (hud) hud.dirty = true;
}

// --- XR frames -----------------------------------------------------------------------------------
function controller(frame, src) {
  const pose = frame.getPose(src.gripSpace, viewerSpace);
  if (!pose) return null;
  const p = pose.transform.position;
  const o = pose.transform.orientation;
  const gp = src.gamepad;
  return {
    p: [p.x, p.y, p.z],
    q: [o.x, o.y, o.z, o.w],
    b: gp ? gp.buttons.map((b) => [b.pressed, b.touched, b.value]) : [],
    a: gp ? Array.from(gp.axes) : [],
  };
}

function onFrame(time, frame) {
  session.requestAnimationFrame(onFrame);
  const msg = { type: 'frame', seq: seq++, time, sent: performance.timeOrigin + performance.now() };
  for (const src of session.inputSources) {
    if (!src.gripSpace || (src.handedness !== 'left' && src.handedness !== 'right')) continue;
    const c = controller(frame, src);
    if (c) msg[src.handedness === 'right' ? 'r' : 'l'] = c;
  }
  if ((msg.r || msg.l) && ws && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < MAX_BUFFERED) {
    ws.send(JSON.stringify(msg));
  }
  draw(frame);
}

async function enter(mode) {
  if (session) return;
  try {
    session = await navigator.xr.requestSession(mode, { requiredFeatures: ['local'] });
  } catch (err) {
    setText('st-error', `Could not start ${mode}: ${err.message}`);
    return;
  }
  document.body.dataset.session = mode;
  setText('st-session', mode);
  session.addEventListener('end', () => {
    session = null;
    document.body.dataset.session = 'none';
    setText('st-session', 'ended');
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'session', state: 'ended' }));
  });
  const canvas = document.createElement('canvas');
  gl = canvas.getContext('webgl2', { xrCompatible: true, alpha: true }) || canvas.getContext('webgl', { xrCompatible: true, alpha: true });
  await gl.makeXRCompatible();
  session.updateRenderState({ baseLayer: new XRWebGLLayer(session, gl) });
  viewerSpace = await session.requestReferenceSpace('viewer');
  localSpace = await session.requestReferenceSpace('local');
  hud = makeHud(gl);
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'session', state: mode }));
  session.requestAnimationFrame(onFrame);
}

// --- head-locked status panel ---------------------------------------------------------------------
const VS = `attribute vec2 a; uniform mat4 m; varying vec2 uv;
void main() { uv = vec2(a.x + 0.5, 0.5 - a.y); gl_Position = m * vec4(a, 0.0, 1.0); }`;
const FS = `precision mediump float; uniform sampler2D t; varying vec2 uv;
void main() { gl_FragColor = texture2D(t, uv); }`;

function makeHud(g) {
  const compile = (type, src) => { const s = g.createShader(type); g.shaderSource(s, src); g.compileShader(s); return s; };
  const prog = g.createProgram();
  g.attachShader(prog, compile(g.VERTEX_SHADER, VS));
  g.attachShader(prog, compile(g.FRAGMENT_SHADER, FS));
  g.linkProgram(prog);
  const buf = g.createBuffer();
  g.bindBuffer(g.ARRAY_BUFFER, buf);
  g.bufferData(g.ARRAY_BUFFER, new Float32Array([-0.5, -0.5, 0.5, -0.5, -0.5, 0.5, 0.5, 0.5]), g.STATIC_DRAW);
  const tex = g.createTexture();
  const text = document.createElement('canvas');
  text.width = 512; text.height = 192;
  return { prog, buf, tex, text, dirty: true, loc: { a: g.getAttribLocation(prog, 'a'), m: g.getUniformLocation(prog, 'm') } };
}

function paintHud(h) {
  const c = h.text.getContext('2d');
  const m = status;
  const engaged = m && m.engaged;
  c.fillStyle = !m ? 'rgba(120,0,0,0.85)' : engaged ? 'rgba(0,110,40,0.85)' : 'rgba(110,90,0,0.85)';
  c.fillRect(0, 0, 512, 192);
  c.fillStyle = '#fff';
  c.font = 'bold 44px sans-serif';
  c.fillText(!m ? 'NO DAEMON LINK' : engaged ? 'ARM FOLLOWS' : 'ARM HOLDS', 20, 60);
  c.font = '30px sans-serif';
  if (m) {
    c.fillText(`${m.rate_hz.toFixed(0)} Hz  ${m.link}${m.held && !engaged ? '  · ' + m.held : ''}`, 20, 115);
    c.fillText(m.recording ? `● REC${m.success ? ' (success)' : ''}` : 'not recording', 20, 165);
  }
  gl.bindTexture(gl.TEXTURE_2D, h.tex);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, h.text);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  h.dirty = false;
}

function mul(a, b) { // column-major 4x4
  const o = new Float32Array(16);
  for (let c = 0; c < 4; c++) for (let r = 0; r < 4; r++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
    o[c * 4 + r] = s;
  }
  return o;
}

// panel 0.36 m × 0.135 m, 0.7 m ahead and 0.2 m below the eyes
const HUD_MODEL = new Float32Array([0.36, 0, 0, 0, 0, 0.135, 0, 0, 0, 0, 1, 0, 0, -0.2, -0.7, 1]);

function draw(frame) {
  const layer = session.renderState.baseLayer;
  gl.bindFramebuffer(gl.FRAMEBUFFER, layer.framebuffer);
  gl.clearColor(0, 0, 0, session.environmentBlendMode === 'opaque' ? 1 : 0);
  gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  const viewer = frame.getViewerPose(localSpace);
  if (!viewer || !hud) return;
  if (hud.dirty) paintHud(hud);
  gl.useProgram(hud.prog);
  gl.bindBuffer(gl.ARRAY_BUFFER, hud.buf);
  gl.enableVertexAttribArray(hud.loc.a);
  gl.vertexAttribPointer(hud.loc.a, 2, gl.FLOAT, false, 0, 0);
  gl.bindTexture(gl.TEXTURE_2D, hud.tex);
  gl.enable(gl.BLEND);
  gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
  const headModel = mul(viewer.transform.matrix, HUD_MODEL);
  for (const view of viewer.views) {
    const vp = layer.getViewport(view);
    gl.viewport(vp.x, vp.y, vp.width, vp.height);
    gl.uniformMatrix4fv(hud.loc.m, false, mul(view.projectionMatrix, mul(view.transform.inverse.matrix, headModel)));
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }
}

async function init() {
  connect();
  if (!navigator.xr) {
    setText('st-session', 'no WebXR in this browser (needs https:// or http://localhost)');
    return;
  }
  for (const [id, mode] of [['enter-vr', 'immersive-vr'], ['enter-ar', 'immersive-ar']]) {
    const ok = await navigator.xr.isSessionSupported(mode).catch(() => false);
    const button = $(id);
    button.disabled = !ok;
    button.addEventListener('click', () => enter(mode));
  }
  document.body.dataset.ready = 'true';
}

init();
