// Test harness (served only when the daemon runs with an emulation module, i.e. in browser tests):
// installs Meta's Immersive Web Emulation Runtime (IWER) as the page's WebXR and exposes
// window.__xrEmu so a test can place the head and the controllers' *grip* poses and set buttons.
import { XRDevice, metaQuest3 } from './emulate/iwer.module.js';

const device = new XRDevice(metaQuest3);
device.installRuntime({ forceInstall: true });

// Rigid transforms as {r: 3x3 row-major array, t: [x, y, z]}.
function fromQuat(q, t) {
  const [x, y, z, w] = q;
  return { r: [
    1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
    2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
    2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], t: [...t] };
}
function fromColumnMajor(m) {
  return { r: [m[0], m[4], m[8], m[1], m[5], m[9], m[2], m[6], m[10]], t: [m[12], m[13], m[14]] };
}
function compose(a, b) {
  const r = new Array(9).fill(0);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) r[i * 3 + j] += a.r[i * 3 + k] * b.r[k * 3 + j];
  const t = [0, 1, 2].map((i) => a.r[i * 3] * b.t[0] + a.r[i * 3 + 1] * b.t[1] + a.r[i * 3 + 2] * b.t[2] + a.t[i]);
  return { r, t };
}
function invert(a) {
  const r = [a.r[0], a.r[3], a.r[6], a.r[1], a.r[4], a.r[7], a.r[2], a.r[5], a.r[8]];
  const t = [0, 1, 2].map((i) => -(r[i * 3] * a.t[0] + r[i * 3 + 1] * a.t[1] + r[i * 3 + 2] * a.t[2]));
  return { r, t };
}
function toQuat(r) { // row-major rotation -> [x, y, z, w]
  const [m00, m01, m02, m10, m11, m12, m20, m21, m22] = r;
  const tr = m00 + m11 + m22;
  let x, y, z, w;
  if (tr > 0) { const s = Math.sqrt(tr + 1) * 2; w = 0.25 * s; x = (m21 - m12) / s; y = (m02 - m20) / s; z = (m10 - m01) / s; }
  else if (m00 > m11 && m00 > m22) { const s = Math.sqrt(1 + m00 - m11 - m22) * 2; w = (m21 - m12) / s; x = 0.25 * s; y = (m01 + m10) / s; z = (m02 + m20) / s; }
  else if (m11 > m22) { const s = Math.sqrt(1 + m11 - m00 - m22) * 2; w = (m02 - m20) / s; x = (m01 + m10) / s; y = 0.25 * s; z = (m12 + m21) / s; }
  else { const s = Math.sqrt(1 + m22 - m00 - m11) * 2; w = (m10 - m01) / s; x = (m02 + m20) / s; y = (m12 + m21) / s; z = 0.25 * s; }
  return [x, y, z, w];
}

const gripInv = {};
for (const side of ['left', 'right']) gripInv[side] = invert(fromColumnMajor(metaQuest3.controllerConfig.layout[side].gripOffsetMatrix));
const SIDES = { r: 'right', l: 'left' };

window.__xrEmu = {
  device,
  // head pose in the local reference space: position (m), quaternion [x, y, z, w]
  setHead(p, q) { device.position.set(...p); device.quaternion.set(...q); },
  // the controller's grip pose in the local reference space; IWER places the target ray, so the
  // grip offset of the emulated Touch Plus controller is taken off.
  setGrip(side, p, q) {
    const ray = compose(fromQuat(q, p), gripInv[SIDES[side]]);
    const c = device.controllers[SIDES[side]];
    c.position.set(...ray.t);
    c.quaternion.set(...toQuat(ray.r));
  },
  // id: 'trigger' | 'squeeze' | 'thumbstick' | 'a-button' | 'b-button' | 'x-button' | 'y-button' | 'thumbrest'
  setButton(side, id, value, touched) {
    const c = device.controllers[SIDES[side]];
    c.setButtonValueImmediate(id, value);
    if (touched !== undefined) c.updateButtonTouch(id, touched);
  },
  setStick(side, x, y) { device.controllers[SIDES[side]].updateAxes('thumbstick', x, y); },
  // one call per trajectory step: {head: [p, q], r: {p, q, buttons: {id: [value, touched]}, stick: [x, y]}, l: ...}
  apply(step) {
    if (step.head) this.setHead(step.head[0], step.head[1]);
    for (const side of ['r', 'l']) {
      const s = step[side];
      if (!s) continue;
      this.setGrip(side, s.p, s.q);
      for (const [id, [value, touched]] of Object.entries(s.buttons || {})) this.setButton(side, id, value, touched);
      if (s.stick) this.setStick(side, s.stick[0], s.stick[1]);
    }
  },
  // plays `steps` (as for apply) one every `dtMs` on the page's clock; `playing` is false at the end
  playing: false,
  play(steps, dtMs) {
    const t0 = performance.now();
    this.playing = true;
    const tick = () => {
      const k = Math.floor((performance.now() - t0) / dtMs);
      this.apply(steps[Math.min(k, steps.length - 1)]);
      if (k >= steps.length) { this.playing = false; return; }
      setTimeout(tick, 4);
    };
    tick();
  },
};
document.documentElement.dataset.emulated = 'iwer';
