// MMFace4D viewer: the page of `mmface4d view` (served or exported; every URL is relative).
// The mesh frame shown is floor(audio time x fps): the audio element is the clock, so sound and lips never drift.
// API for tests and power users: window.mmface4dViewer = {ready, load(id), seek(s), state(), vertices(frame), ...}.
import * as THREE from './vendor/three.module.js';
import { OrbitControls } from './vendor/OrbitControls.js';

// viridis at ten stops: the zero colour is the first (dark purple), the colour bar's top the last (yellow)
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
// the page's colours in sRGB; vertex colours are linear (three.js converts for output), hence VIRIDIS_LINEAR
const toLinear = (c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
const VIRIDIS_LINEAR = VIRIDIS.map((rgb) => rgb.map((c) => toLinear(c / 255)));
const SKIN = new THREE.Color(0xd8c8b8);
const PREDICTION_TINT = new THREE.Color(0xb8c8e0);
const BACKGROUND = 0xf4f4f2;
const LIST_LIMIT = 1000; // takes listed at once (a whole release has 35,904)

// ------------------------------------------------------------------ binary forms (benchmark/viewer/frames.py)
async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function magic(view) {
  return String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
}

export async function decodeFrames(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 64 || magic(view) !== 'MF4V' || view.getUint16(4, true) !== 1) {
    throw new Error('not an MF4V version 1 vertex stream');
  }
  const frames = view.getUint32(8, true);
  const count = view.getUint32(12, true);
  const origin = [view.getFloat64(16, true), view.getFloat64(24, true), view.getFloat64(32, true)];
  const step = [view.getFloat64(40, true), view.getFloat64(48, true), view.getFloat64(56, true)];
  const raw = await gunzip(bytes.subarray(64));
  const values = frames * count * 3;
  if (raw.length !== 2 * values) throw new Error(`MF4V payload holds ${raw.length} bytes, expected ${2 * values}`);
  const codes = new Uint16Array(values);
  const stride = count * 3;
  for (let i = 0; i < values; i++) {
    const z = raw[i] | (raw[values + i] << 8);
    const delta = (z >>> 1) ^ -(z & 1);
    codes[i] = ((i >= stride ? codes[i - stride] : 0) + delta) & 0xffff;
  }
  return {
    frames, count, origin, step, codes,
    // positions of frame f (metres) into out (Float32Array of 3N): origin + code x step, in double precision
    frame(f, out) {
      const base = f * stride;
      for (let j = 0; j < stride; j += 3) {
        out[j] = origin[0] + codes[base + j] * step[0];
        out[j + 1] = origin[1] + codes[base + j + 1] * step[1];
        out[j + 2] = origin[2] + codes[base + j + 2] * step[2];
      }
      return out;
    },
  };
}

export async function decodeFaces(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (magic(view) !== 'MF4F' || view.getUint16(4, true) !== 1) throw new Error('not an MF4F version 1 triangle stream');
  const count = view.getUint32(8, true);
  const raw = await gunzip(bytes.subarray(12));
  if (raw.length !== count * 12) throw new Error(`MF4F payload holds ${raw.length} bytes, expected ${count * 12}`);
  return new Uint32Array(raw.buffer, raw.byteOffset, count * 3);
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${await response.text().catch(() => '')}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function fetchJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function viridis(t, out, offset) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  for (let c = 0; c < 3; c++) out[offset + c] = (1 - f) * VIRIDIS_LINEAR[i][c] + f * VIRIDIS_LINEAR[i + 1][c];
}

// ------------------------------------------------------------------ page state
const $ = (id) => document.getElementById(id);
const viewer = {
  catalogue: null, take: null, truth: null, prediction: null, faces: null,
  mode: 'truth', playing: false, time: 0, frame: 0, drawn: 0, lastError: null,
};
let renderer, scene, camera, controls, group, truthMesh, predictionMesh, homeView;

function message(text) {
  const box = $('message');
  box.textContent = text || '';
  box.hidden = !text;
}

function makeMesh(count, colour) {
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute('position', new THREE.BufferAttribute(new Float32Array(count * 3), 3));
  geometry.setAttribute('color', new THREE.BufferAttribute(new Float32Array(count * 3), 3));
  geometry.setIndex(new THREE.BufferAttribute(viewer.faces, 1));
  const material = new THREE.MeshLambertMaterial({ color: colour, side: THREE.DoubleSide, vertexColors: false });
  const mesh = new THREE.Mesh(geometry, material);
  mesh.frustumCulled = false;
  return mesh;
}

function setupScene() {
  const canvas = $('canvas');
  renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  scene = new THREE.Scene();
  scene.background = new THREE.Color(BACKGROUND);
  camera = new THREE.PerspectiveCamera(20, 1, 0.01, 20);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x808080, 0.45));
  const key = new THREE.DirectionalLight(0xffffff, 0.85);
  key.position.set(0.4, 0.5, 1.0);
  camera.add(key);
  scene.add(camera);
  group = new THREE.Group();
  scene.add(group);
  controls = new OrbitControls(camera, canvas);
  controls.enableDamping = false;
  new ResizeObserver(resize).observe($('stage'));
  resize();
}

function resize() {
  const stage = $('stage');
  const width = Math.max(stage.clientWidth, 1), height = Math.max(stage.clientHeight, 1);
  renderer.setSize(width, height, false);
  camera.aspect = width / height;
  camera.updateProjectionMatrix();
  draw();
}

function frameCount() {
  if (!viewer.truth) return 0;
  return viewer.truth.frames;
}

function frameAt(time) {
  const last = frameCount() - 1;
  if (last < 0) return 0;
  return Math.min(Math.max(Math.floor(time * viewer.take.fps + 1e-9), 0), last);
}

// the side a mesh's outside faces: +1 when its area-weighted normal points along +z (the canonical head frame)
function facing(positions, faces) {
  let z = 0;
  for (let i = 0; i < faces.length; i += 3) {
    const a = faces[i] * 3, b = faces[i + 1] * 3, c = faces[i + 2] * 3;
    const ux = positions[b] - positions[a], uy = positions[b + 1] - positions[a + 1];
    const vx = positions[c] - positions[a], vy = positions[c + 1] - positions[a + 1];
    z += ux * vy - uy * vx;
  }
  return z >= 0 ? 1 : -1;
}

function layout() {
  // side by side: truth on the left, prediction on the right, one face width and a bit apart
  const side = viewer.mode === 'side' && viewer.prediction;
  const width = viewer.box ? viewer.box.width : 0.2;
  truthMesh.position.x = side ? -0.55 * width : 0;
  if (predictionMesh) predictionMesh.position.x = side ? 0.55 * width : 0;
  truthMesh.visible = viewer.mode === 'truth' || viewer.mode === 'side' || (viewer.mode === 'error') || !viewer.prediction;
  if (predictionMesh) predictionMesh.visible = viewer.prediction && (viewer.mode === 'prediction' || viewer.mode === 'side');
  if (viewer.mode === 'prediction' && viewer.prediction) truthMesh.visible = false;
  const errorMode = viewer.mode === 'error' && viewer.prediction;
  truthMesh.material.vertexColors = !!errorMode;
  truthMesh.material.color.copy(errorMode ? new THREE.Color(1, 1, 1) : SKIN);
  truthMesh.material.needsUpdate = true;
  $('label-left').textContent = side ? 'truth' : '';
  $('label-right').textContent = side ? 'prediction' : '';
  $('colourbar').hidden = !errorMode;
}

function updateGeometry() {
  const f = viewer.frame;
  const truthPositions = truthMesh.geometry.attributes.position;
  viewer.truth.frame(f, truthPositions.array);
  truthPositions.needsUpdate = true;
  truthMesh.geometry.computeVertexNormals();
  viewer.lastError = null;
  if (viewer.prediction && predictionMesh) {
    const pf = Math.min(f, viewer.prediction.frames - 1);
    const predicted = predictionMesh.geometry.attributes.position;
    viewer.prediction.frame(pf, predicted.array);
    predicted.needsUpdate = true;
    predictionMesh.geometry.computeVertexNormals();
    if (viewer.mode === 'error') {
      const colours = truthMesh.geometry.attributes.color;
      const a = truthPositions.array, b = predicted.array, scale = viewer.take.error_scale_mm || 1;
      let worst = 0;
      for (let v = 0; v < viewer.truth.count; v++) {
        const dx = a[3 * v] - b[3 * v], dy = a[3 * v + 1] - b[3 * v + 1], dz = a[3 * v + 2] - b[3 * v + 2];
        const mm = Math.sqrt(dx * dx + dy * dy + dz * dz) * 1000;
        if (mm > worst) worst = mm;
        viridis(mm / scale, colours.array, 3 * v);
      }
      colours.needsUpdate = true;
      viewer.lastError = worst;
    }
  }
}

function draw() {
  if (!renderer) return;
  if (viewer.truth) updateGeometry();
  renderer.render(scene, camera);
  viewer.drawn += 1;
  updateClock();
}

function updateClock() {
  const total = frameCount();
  $('clock').textContent = `${viewer.time.toFixed(2)} s · frame ${viewer.frame} / ${Math.max(total - 1, 0)}`;
  $('scrub').value = String(viewer.frame);
  $('play').innerHTML = viewer.playing ? '&#10074;&#10074;' : '&#9654;';
}

function tick() {
  if (viewer.playing && viewer.take) {
    const audio = $('audio');
    const speed = Number($('speed').value);
    viewer.time = viewer.take.has_audio ? audio.currentTime : viewer.time + (speed * (performance.now() - viewer.clockStart)) / 1000;
    viewer.clockStart = performance.now();
    const f = frameAt(viewer.time);
    if (f !== viewer.frame) {
      viewer.frame = f;
      draw();
    }
    const ended = viewer.take.has_audio ? audio.ended : viewer.time >= frameCount() / viewer.take.fps;
    if (ended) pause();
  }
  requestAnimationFrame(tick);
}

// ------------------------------------------------------------------ player
async function play() {
  if (!viewer.take) return;
  const audio = $('audio');
  if (viewer.frame >= frameCount() - 1) seek(0);
  viewer.playing = true;
  viewer.clockStart = performance.now();
  if (viewer.take.has_audio) {
    audio.playbackRate = Number($('speed').value);
    try {
      await audio.play();
    } catch (error) {
      if (error.name === 'AbortError') return; // paused (or another take loaded) before playback began: not a fault
      viewer.playing = false;
      message(`The audio cannot play: ${error.message}`);
    }
  }
  updateClock();
}

function pause() {
  viewer.playing = false;
  $('audio').pause();
  viewer.time = viewer.take && viewer.take.has_audio ? $('audio').currentTime : viewer.time;
  updateClock();
}

function seek(seconds) {
  if (!viewer.take) throw new Error('no take is loaded');
  const duration = frameCount() / viewer.take.fps;
  const time = Math.min(Math.max(Number(seconds) || 0, 0), duration);
  viewer.time = time;
  if (viewer.take.has_audio) $('audio').currentTime = time;
  viewer.frame = frameAt(time);
  draw();
  return viewer.frame;
}

function step(delta) {
  if (!viewer.take) return;
  pause();
  const f = Math.min(Math.max(viewer.frame + delta, 0), frameCount() - 1);
  seek((f + 0.5) / viewer.take.fps);
}

function setMode(mode) {
  if (!['truth', 'prediction', 'side', 'error'].includes(mode)) throw new Error(`unknown mode ${mode}`);
  if (mode !== 'truth' && !viewer.prediction) {
    mode = 'truth';
  }
  viewer.mode = mode;
  for (const input of document.querySelectorAll('input[name=mode]')) input.checked = input.value === mode;
  if (viewer.take) { layout(); frameCamera(false); draw(); }
  return mode;
}

function frameCamera(reset) {
  // the home view: in front of the face, far enough for what is shown (one face, or two side by side)
  const box = viewer.box;
  if (!box) return;
  const wide = viewer.mode === 'side' && viewer.prediction ? 2.2 : 1.0;
  const size = Math.max(box.width * wide, box.height) * 1.25;
  const distance = size / (2 * Math.tan((camera.fov * Math.PI) / 360)) / Math.min(1, camera.aspect);
  const target = new THREE.Vector3(0, box.centreY, box.centreZ);
  if (reset || !homeView) {
    camera.position.set(0, box.centreY, box.centreZ + distance);
    controls.target.copy(target);
    camera.up.set(0, 1, 0);
    camera.lookAt(target);
    controls.update();
  }
  homeView = { position: camera.position.clone(), target: target.clone() };
}

function resetView() {
  homeView = null;
  frameCamera(true);
  draw();
}

// ------------------------------------------------------------------ take list
function fillFilter(id, values) {
  const select = $(id);
  for (const value of [...new Set(values.filter((v) => v !== null && v !== undefined))].sort()) {
    const option = document.createElement('option');
    option.value = option.textContent = value;
    select.appendChild(option);
  }
  select.addEventListener('change', renderList);
}

function renderList() {
  const split = $('filter-split').value, subject = $('filter-subject').value;
  const emotion = $('filter-emotion').value, gender = $('filter-gender').value;
  const text = $('filter-text').value.trim().toLowerCase();
  const list = $('take-list');
  list.textContent = '';
  let shown = 0;
  for (const take of viewer.catalogue.takes) {
    if ((split && take.split !== split) || (subject && take.subject_id !== subject) || (emotion && take.emotion !== emotion)
      || (gender && take.gender !== gender)) continue;
    if (text && !(`${take.text || ''} ${take.id}`.toLowerCase().includes(text))) continue;
    shown += 1;
    if (shown > LIST_LIMIT) continue;
    const item = document.createElement('li');
    item.dataset.id = take.id;
    if (viewer.take && viewer.take.id === take.id) item.className = 'current';
    const first = document.createElement('div');
    first.className = 'id';
    first.textContent = `${take.id} · ${take.emotion || '?'} · ${take.duration_s.toFixed(1)} s${take.has_prediction ? ' · pred' : ''}`;
    const second = document.createElement('div');
    second.className = 'sub';
    second.textContent = take.text || '(no text)';
    item.append(first, second);
    item.addEventListener('click', () => { location.hash = `take=${encodeURIComponent(take.id)}`; });
    list.appendChild(item);
  }
  const listed = shown > LIST_LIMIT ? ` (the first ${LIST_LIMIT} listed: filter or search to see others)` : '';
  $('take-count').textContent = `${shown} of ${viewer.catalogue.takes.length} takes${listed}`;
}

function showFields(take) {
  $('take-title').textContent = take.id;
  $('take-text').textContent = take.text || '(no sentence text)';
  const parts = [`subject ${take.subject_id}`, `sentence ${take.sentence_id}`, `emotion ${take.emotion || 'unknown'}`,
    `gender ${take.gender || 'unknown'}`, take.age !== null && take.age !== undefined ? `age ${take.age}` : null,
    `split ${take.split}`, `${take.duration_s.toFixed(2)} s`, `${take.num_frames} frames at ${take.fps} fps`,
    `${take.num_vertices} vertices`];
  $('take-fields').textContent = parts.filter(Boolean).join(' · ');
  const body = $('metrics').querySelector('tbody');
  body.textContent = '';
  if (take.metrics) {
    const names = { lip_max: 'lip max (LVE)', lip_mean: 'lip mean', upper_max: 'upper-face max', face_max: 'face max' };
    for (const [key, label] of Object.entries(names)) {
      const row = document.createElement('tr');
      row.innerHTML = `<td></td><td class="value"></td>`;
      row.children[0].textContent = label;
      row.children[1].textContent = take.metrics[key].mm.toFixed(3);
      body.appendChild(row);
    }
  }
  $('metrics').hidden = !take.metrics;
  const scale = take.error_scale_mm || 1;
  $('colourbar-mid').textContent = (scale / 2).toPrecision(2);
  $('colourbar-max').textContent = `${scale.toPrecision(2)} mm`;
  for (const input of document.querySelectorAll('input[name=mode]')) {
    const enabled = input.value === 'truth' || take.has_prediction;
    input.disabled = !enabled;
    input.parentElement.classList.toggle('disabled', !enabled);
  }
}

// ------------------------------------------------------------------ loading a take
let loading = Promise.resolve();

async function loadTake(id) {
  const entry = viewer.catalogue.takes.find((take) => take.id === id);
  if (!entry) {
    pause();
    viewer.take = null; viewer.truth = null; viewer.prediction = null;
    if (truthMesh) { group.remove(truthMesh); truthMesh = null; }
    if (predictionMesh) { group.remove(predictionMesh); predictionMesh = null; }
    $('take-title').textContent = 'no take loaded';
    $('take-text').textContent = ''; $('take-fields').textContent = '';
    $('metrics').hidden = true; $('colourbar').hidden = true;
    message(`There is no take "${id}" in this release (${viewer.catalogue.takes.length} takes; pick one from the list).`);
    renderer.render(scene, camera);
    throw new Error(`unknown take id ${id}`);
  }
  message('loading…');
  pause();
  const base = `data/takes/${entry.key.split('/').map(encodeURIComponent).join('/')}/`;
  const take = await fetchJSON(`${base}take.json`);
  const [truthBytes, predictionBytes] = await Promise.all([
    fetchBytes(`${base}truth.bin`), take.has_prediction ? fetchBytes(`${base}prediction.bin`) : Promise.resolve(null),
  ]);
  const truth = await decodeFrames(truthBytes);
  const prediction = predictionBytes ? await decodeFrames(predictionBytes) : null;
  viewer.bytesReceived = truthBytes.byteLength + (predictionBytes ? predictionBytes.byteLength : 0);
  const audio = $('audio');
  if (viewer.audioURL) { URL.revokeObjectURL(viewer.audioURL); viewer.audioURL = null; }
  if (take.has_audio) {
    // a blob: URL, so that the audio seeks the same from the server and from any static host (no Range requests needed)
    const wav = await fetchBytes(`${base}audio.wav`);
    viewer.audioURL = URL.createObjectURL(new Blob([wav], { type: 'audio/wav' }));
    audio.src = viewer.audioURL;
    await new Promise((resolve) => {
      const done = () => { audio.removeEventListener('loadedmetadata', done); audio.removeEventListener('error', done); resolve(); };
      audio.addEventListener('loadedmetadata', done);
      audio.addEventListener('error', done);
    });
    if (audio.error) { take.has_audio = false; }
  } else {
    audio.removeAttribute('src');
  }
  if (truthMesh) group.remove(truthMesh);
  if (predictionMesh) group.remove(predictionMesh);
  viewer.take = take; viewer.truth = truth; viewer.prediction = prediction;
  truthMesh = makeMesh(truth.count, SKIN);
  group.add(truthMesh);
  predictionMesh = prediction ? makeMesh(prediction.count, PREDICTION_TINT) : null;
  if (predictionMesh) group.add(predictionMesh);
  const first = truth.frame(0, new Float32Array(truth.count * 3));
  group.rotation.x = facing(first, viewer.faces) > 0 ? 0 : Math.PI; // camera 1's frame (y down, face to -z): turn it
  group.updateMatrixWorld();
  const world = new THREE.Box3().setFromBufferAttribute(new THREE.BufferAttribute(first, 3)).applyMatrix4(group.matrixWorld);
  viewer.box = { width: world.max.x - world.min.x, height: world.max.y - world.min.y,
    centreY: (world.max.y + world.min.y) / 2, centreZ: (world.max.z + world.min.z) / 2 };
  $('scrub').max = String(truth.frames - 1);
  showFields(take);
  if (viewer.mode !== 'truth' && !prediction) viewer.mode = 'truth';
  setMode(viewer.mode);
  homeView = null;
  frameCamera(true);
  layout();
  viewer.time = 0;
  viewer.frame = 0;
  if (take.has_audio) audio.currentTime = 0;
  message(take.has_audio ? '' : '');
  draw();
  for (const item of document.querySelectorAll('#take-list li')) item.classList.toggle('current', item.dataset.id === id);
  return state();
}

function load(id) {
  loading = loading.catch(() => {}).then(async () => {
    try {
      return await loadTake(String(id));
    } catch (error) {
      if (!/^unknown take id/.test(error.message)) message(`The take ${id} could not be loaded: ${error.message}`);
      throw error;
    }
  });
  return loading;
}

function state() {
  return {
    id: viewer.take ? viewer.take.id : null,
    frame: viewer.frame,
    time: viewer.playing && viewer.take && viewer.take.has_audio ? $('audio').currentTime : viewer.time,
    audioTime: viewer.take && viewer.take.has_audio ? $('audio').currentTime : null,
    playing: viewer.playing,
    mode: viewer.mode,
    vertexCount: viewer.truth ? viewer.truth.count : 0,
    frames: frameCount(),
    fps: viewer.take ? viewer.take.fps : null,
    meshes: group ? group.children.filter((mesh) => mesh.visible).length : 0,
    drawn: viewer.drawn,
    maxErrorMm: viewer.lastError,
    message: $('message').hidden ? null : $('message').textContent,
    bytesReceived: viewer.bytesReceived || 0,
  };
}

function vertices(frame, which = 'truth') {
  const source = which === 'prediction' ? viewer.prediction : viewer.truth;
  if (!source) throw new Error(which === 'prediction' ? 'no prediction for this take' : 'no take is loaded');
  const f = frame === undefined ? viewer.frame : Number(frame);
  if (!(f >= 0 && f < source.frames)) throw new Error(`frame ${frame} is outside 0..${source.frames - 1}`);
  return source.frame(f, new Float32Array(source.count * 3));
}

// ------------------------------------------------------------------ start
function hashTake() {
  const match = /(?:^|&)take=([^&]*)/.exec(location.hash.slice(1));
  return match ? decodeURIComponent(match[1]) : null;
}

async function start() {
  setupScene();
  $('colourbar-gradient').style.background = `linear-gradient(to right, ${VIRIDIS.map((c) => `rgb(${c.join(',')})`).join(', ')})`;
  const [catalogue, faces] = await Promise.all([fetchJSON('data/takes.json'), fetchBytes('data/topology.bin').then(decodeFaces)]);
  viewer.catalogue = catalogue;
  viewer.faces = faces;
  const release = catalogue.release;
  $('release-line').textContent = `${release.name} · ${catalogue.takes.length} takes · ${release.num_vertices} vertices · ${release.fps} fps`
    + (catalogue.prediction ? ` · prediction: ${catalogue.prediction.model || catalogue.prediction.file}` : '');
  const takes = catalogue.takes;
  fillFilter('filter-split', takes.map((t) => t.split));
  fillFilter('filter-subject', takes.map((t) => t.subject_id));
  fillFilter('filter-emotion', takes.map((t) => t.emotion));
  fillFilter('filter-gender', takes.map((t) => t.gender));
  $('filter-text').addEventListener('input', renderList);
  renderList();
  $('play').addEventListener('click', () => (viewer.playing ? pause() : play()));
  $('step-back').addEventListener('click', () => step(-1));
  $('step-forward').addEventListener('click', () => step(1));
  $('speed').addEventListener('change', () => { $('audio').playbackRate = Number($('speed').value); });
  $('scrub').addEventListener('input', () => { pause(); seek((Number($('scrub').value) + 0.5) / viewer.take.fps); });
  $('reset').addEventListener('click', resetView);
  for (const input of document.querySelectorAll('input[name=mode]')) input.addEventListener('change', () => setMode(input.value));
  controls.addEventListener('change', () => renderer.render(scene, camera));
  document.addEventListener('keydown', (event) => {
    if (event.target instanceof HTMLInputElement && event.target.type === 'search') return;
    if (event.target instanceof HTMLSelectElement && event.key !== ' ') return;
    if (event.key === ' ') { event.preventDefault(); viewer.playing ? pause() : play(); }
    else if (event.key === ',') step(-1);
    else if (event.key === '.') step(1);
    else if (event.key === 'r') resetView();
  });
  document.addEventListener('keyup', (event) => {
    if (event.key === ' ' && event.target instanceof HTMLButtonElement) event.preventDefault(); // no second toggle by the button
  });
  window.addEventListener('hashchange', () => { const id = hashTake(); if (id) load(id).catch(() => {}); });
  requestAnimationFrame(tick);
  const wanted = hashTake();
  if (wanted) await load(wanted).catch(() => {});
  else if (takes.length) await load(takes[0].id);
  else message('This release has no takes.');
}

const ready = start().catch((error) => { message(`The viewer could not start: ${error.message}`); throw error; });

window.mmface4dViewer = {
  ready,
  load,
  seek,
  state,
  vertices,
  play,
  pause,
  step,
  setMode,
  resetView,
};
