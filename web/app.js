// mnist_models web page: draw a digit, upload a picture, generate digits.
// Plain browser JavaScript, no packages and no build step; it talks only to this server's
// JSON API (/api/models, /api/classify, /api/generate).
'use strict';

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const SIZE = 28; // every digit is 28x28, and the server's PNG sheets are cut on that grid
  const STROKE_WIDTH = 19; // about a fingertip on the 280 px pad, like MNIST's pen on 28 px
  const READ_EVERY_MS = 120; // while a stroke goes on; a finished stroke is always read
  const FRAME_MS = 110; // denoising animation speed
  const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)').matches;

  let limits = { max_count: 64, max_seed: 4294967295, max_body_bytes: 8 * 1024 * 1024 };
  let generators = {};

  class ApiError extends Error {}

  async function api(path, body) {
    const options = body === undefined ? {} : {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    };
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new ApiError('The server is not answering. Is `python analyze.py --serve` still running?');
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError((data && data.error) || `${response.status} ${response.statusText}`);
    }
    return data;
  }

  // Server messages quote commands in `backticks`: show those as code (as text, never as HTML).
  function setMessage(element, message) {
    element.replaceChildren(...String(message).split('`').map((part, i) => {
      if (i % 2 === 0) return document.createTextNode(part);
      const code = document.createElement('code');
      code.textContent = part;
      return code;
    }));
  }

  const percent = (p) => `${(100 * p).toFixed(p >= 0.995 || p < 0.1 ? 1 : 0)}%`;

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new ApiError('The server sent a picture the browser cannot show.'));
      image.src = src;
    });
  }

  // Draw cell (column, row) of a sheet of 28x28 digits onto a 28x28 canvas.
  function drawCell(canvas, sheet, column, row) {
    const ctx = canvas.getContext('2d');
    ctx.drawImage(sheet, column * SIZE, row * SIZE, SIZE, SIZE, 0, 0, SIZE, SIZE);
  }

  function digitCanvas() {
    const canvas = document.createElement('canvas');
    canvas.width = SIZE;
    canvas.height = SIZE;
    return canvas;
  }

  // ---------------------------------------------------------------------------------------
  // The answer to "what digit is this?": verdict, ten probability bars, what the model saw
  // ---------------------------------------------------------------------------------------
  function makeAnswer(root) {
    root.append($('#answer-template').content.cloneNode(true));
    const digit = $('.big-digit', root);
    const text = $('.verdict-text', root);
    const barBox = $('.bars', root);
    const seen = $('.seen img', root);
    const seenEmpty = $('.seen-empty', root);
    const bars = [];
    for (let d = 0; d < 10; d++) {
      const bar = document.createElement('div');
      bar.className = 'bar';
      bar.innerHTML = `<div class="track"><div class="fill"></div></div><span class="label">${d}</span>`;
      barBox.append(bar);
      bars.push(bar);
    }

    function setBars(probabilities, best) {
      bars.forEach((bar, d) => {
        const p = probabilities ? probabilities[d] : 0;
        $('.fill', bar).style.height = `${(100 * p).toFixed(1)}%`;
        bar.classList.toggle('top', d === best);
        bar.title = probabilities ? `${d}: ${percent(p)}` : '';
      });
      barBox.setAttribute('aria-label', probabilities
        ? `Probabilities: ${probabilities.map((p, d) => `${d}: ${percent(p)}`).join(', ')}`
        : 'No probabilities yet');
    }

    function setSeen(src) {
      seen.hidden = !src;
      seenEmpty.hidden = Boolean(src);
      if (src) seen.src = src;
    }

    function plain(state, big, message) {
      root.className = `answer ${state}`;
      root.dataset.digit = '';
      digit.textContent = big;
      setMessage(text, message);
      setBars(null, -1);
      setSeen(null);
    }

    return {
      blank: (message) => plain('blank', '?', message),
      error: (message) => plain('error', '!', message),
      waiting(message) {
        root.className = 'answer waiting';
        text.textContent = message;
      },
      show(result) {
        const p = result.probabilities;
        const order = p.map((value, d) => d).sort((a, b) => p[b] - p[a]);
        root.className = 'answer shown';
        root.dataset.digit = String(result.digit);
        digit.textContent = String(result.digit);
        text.textContent = result.confidence >= 0.6
          ? `${percent(result.confidence)} sure`
          : `${percent(result.confidence)} sure; else ${order[1]} (${percent(p[order[1]])})`;
        setBars(p, result.digit);
        setSeen(result.seen);
      },
    };
  }

  // ---------------------------------------------------------------------------------------
  // Draw
  // ---------------------------------------------------------------------------------------
  const pad = $('#pad');
  const ink = pad.getContext('2d');
  const drawAnswer = makeAnswer($('#draw-answer'));
  let hasInk = false;
  let pointer = null; // the one pointer drawing now; a second finger is ignored
  let last = null;
  let reading = false;
  let readAgain = false;
  let lastReadAt = 0;
  let sent = 0; // request numbers: a slow answer never overwrites a newer one
  let shown = 0;

  function clearPad() {
    ink.fillStyle = '#fff'; // the server sees a white page with black ink, like a scan
    ink.fillRect(0, 0, pad.width, pad.height);
    hasInk = false;
    shown = sent; // answers still on their way are about the old drawing
    drawAnswer.blank('Draw a digit');
  }

  function padPoint(event) {
    const box = pad.getBoundingClientRect();
    return {
      x: (event.clientX - box.left - pad.clientLeft) * (pad.width / pad.clientWidth),
      y: (event.clientY - box.top - pad.clientTop) * (pad.height / pad.clientHeight),
    };
  }

  function strokeTo(point) {
    ink.strokeStyle = '#000';
    ink.lineWidth = STROKE_WIDTH;
    ink.lineCap = 'round';
    ink.lineJoin = 'round';
    ink.beginPath();
    ink.moveTo(last.x, last.y);
    ink.lineTo(point.x, point.y);
    ink.stroke();
    last = point;
  }

  async function readDrawing() {
    if (!hasInk) {
      drawAnswer.blank('Draw a digit');
      return;
    }
    reading = true;
    readAgain = false;
    lastReadAt = performance.now();
    const number = ++sent;
    try {
      const result = await api('/api/classify', { image: pad.toDataURL('image/png'), name: 'drawing' });
      if (number > shown) {
        shown = number;
        if (result.digit === null) drawAnswer.blank('Draw a digit');
        else drawAnswer.show(result);
      }
    } catch (err) {
      if (number > shown) {
        shown = number;
        drawAnswer.error(err.message);
      }
    } finally {
      reading = false;
      if (readAgain) readDrawing();
    }
  }

  function requestRead() {
    if (reading) readAgain = true;
    else readDrawing();
  }

  pad.addEventListener('pointerdown', (event) => {
    if (pointer !== null || (event.pointerType === 'mouse' && event.button !== 0)) return;
    event.preventDefault();
    pointer = event.pointerId;
    pad.setPointerCapture(event.pointerId);
    last = padPoint(event);
    ink.fillStyle = '#000'; // a dot, for a tap (a zero-length line draws nothing)
    ink.beginPath();
    ink.arc(last.x, last.y, STROKE_WIDTH / 2, 0, 2 * Math.PI);
    ink.fill();
    hasInk = true;
    requestRead();
  });

  pad.addEventListener('pointermove', (event) => {
    if (event.pointerId !== pointer) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) strokeTo(padPoint(e));
    if (performance.now() - lastReadAt > READ_EVERY_MS) requestRead();
  });

  function endStroke(event) {
    if (event.pointerId !== pointer) return;
    pointer = null;
    requestRead();
  }
  pad.addEventListener('pointerup', endStroke);
  pad.addEventListener('pointercancel', endStroke);
  pad.addEventListener('lostpointercapture', endStroke);
  $('#clear').addEventListener('click', clearPad);
  document.addEventListener('keydown', (event) => {
    const typing = event.target instanceof HTMLInputElement;
    if (!typing && (event.key === 'Delete' || event.key === 'Escape')) clearPad();
  });
  clearPad();

  // ---------------------------------------------------------------------------------------
  // Upload: file chooser, drag and drop, or paste
  // ---------------------------------------------------------------------------------------
  const fileInput = $('#file');
  const drop = $('#drop');
  const preview = $('#preview');
  const dropText = $('#drop-text');
  const uploadAnswer = makeAnswer($('#upload-answer'));
  uploadAnswer.blank('No picture yet');
  preview.addEventListener('error', () => { preview.hidden = true; });

  function readAsDataUrl(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new ApiError(`${file.name}: the browser could not read the file`));
      reader.readAsDataURL(file);
    });
  }

  async function readPicture(file) {
    dropText.textContent = file.name;
    // base64 grows a file by a third; past the body limit the server would refuse it anyway
    const largest = Math.floor(limits.max_body_bytes * 0.74);
    if (file.size > largest) {
      preview.hidden = true;
      uploadAnswer.error(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; `
        + `pictures up to ${(largest / 1e6).toFixed(1)} MB are read`);
      return;
    }
    uploadAnswer.waiting('Reading…');
    try {
      const url = await readAsDataUrl(file);
      preview.src = url;
      preview.alt = `Your picture ${file.name}`;
      preview.hidden = false;
      const result = await api('/api/classify', { image: url, name: file.name });
      if (result.digit === null) uploadAnswer.blank(result.message);
      else uploadAnswer.show(result);
    } catch (err) {
      uploadAnswer.error(err.message);
    }
  }

  fileInput.addEventListener('change', () => {
    if (fileInput.files.length) readPicture(fileInput.files[0]);
    fileInput.value = ''; // choosing the same file again reads it again
  });
  for (const type of ['dragenter', 'dragover']) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add('over');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    drop.addEventListener(type, () => drop.classList.remove('over'));
  }
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) readPicture(file);
  });
  // A picture dropped beside the zone would otherwise replace the page.
  for (const type of ['dragover', 'drop']) window.addEventListener(type, (event) => event.preventDefault());
  document.addEventListener('paste', (event) => {
    const file = [...(event.clipboardData ? event.clipboardData.files : [])].find((f) => f.type.startsWith('image/'));
    if (file) readPicture(file);
  });

  // ---------------------------------------------------------------------------------------
  // Generate
  // ---------------------------------------------------------------------------------------
  const form = $('#generate-form');
  const results = $('#results');
  const formError = $('#generate-error');
  const digitBox = $('#digits');
  for (let d = 0; d < 10; d++) {
    digitBox.insertAdjacentHTML('beforeend',
      `<input type="radio" name="digit" id="digit-${d}" value="${d}"${d === 3 ? ' checked' : ''}>`
      + `<label for="digit-${d}">${d}</label>`);
  }
  const DIGIT_WORDS = ['zeros', 'ones', 'twos', 'threes', 'fours', 'fives', 'sixes', 'sevens', 'eights', 'nines'];

  function integerField(id, low, high, name) {
    const text = $(`#${id}`).value.trim();
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < low || value > high) {
      throw new ApiError(`${name} must be a whole number from ${low} to ${high}`);
    }
    return value;
  }

  $('#reseed').addEventListener('click', () => {
    $('#seed').value = String(Math.floor(Math.random() * 1e6));
  });

  function makePanel(key) {
    const panel = $('#panel-template').content.firstElementChild.cloneNode(true);
    const info = generators[key] || { name: key };
    panel.dataset.model = key;
    $('h3', panel).textContent = key === 'diffusion' ? 'Diffusion' : info.name;
    results.append(panel);
    return panel;
  }

  function fail(panel, message) {
    panel.dataset.state = 'failed';
    panel.className = 'panel failed';
    setMessage($('.summary', panel), message);
    $('.command', panel).hidden = true;
  }

  async function runPanel(panel, key, request) {
    const info = generators[key];
    if (info && !info.ready) {
      fail(panel, `Not available: ${info.error}`);
      return;
    }
    panel.dataset.state = 'busy';
    panel.className = 'panel busy';
    $('.meta', panel).textContent = `seed ${request.seed}`;
    $('.summary', panel).textContent = `Drawing ${request.count} ${request.count === 1 ? 'digit' : DIGIT_WORDS[request.digit]}…`;
    $('.command', panel).hidden = true;
    try {
      const result = await api('/api/generate', { model: key, ...request });
      const sheets = await Promise.all([loadImage(result.digits), result.steps ? loadImage(result.steps) : null]);
      showGenerated(panel, result, sheets[0], sheets[1]);
    } catch (err) {
      fail(panel, err.message);
    }
  }

  function showGenerated(panel, result, digitsSheet, stepsSheet) {
    const tiles = $('.tiles', panel);
    const film = $('.film', panel);
    const frames = $('.frames', panel);
    const scrub = $('.scrub', panel);
    const stepLabel = $('.step-label', panel);
    const playButton = $('.play', panel);
    const steps = result.num_steps;
    let selected = 0;
    let step = steps;
    let timer = null;

    panel.className = 'panel';
    $('.meta', panel).textContent = `seed ${result.seed} · ${result.count} in ${result.seconds.toFixed(2)} s`;
    $('.command code', panel).textContent = result.command;
    $('.command', panel).hidden = false;
    const right = result.read ? result.read.filter((r) => r.digit === result.digit).length : null;
    $('.summary', panel).textContent = result.read
      ? `The classifier reads ${right} of ${result.count} as ${result.digit}.`
      : 'The classifier is not loaded, so nothing is read.';

    const tileCanvases = [];
    tiles.replaceChildren();
    for (let i = 0; i < result.count; i++) {
      const tile = document.createElement('button');
      tile.type = 'button';
      tile.className = 'tile';
      const canvas = digitCanvas();
      drawCell(canvas, digitsSheet, i, 0);
      tile.append(canvas);
      let label = `Sample ${i + 1}`;
      if (result.read) {
        const read = result.read[i];
        const caption = document.createElement('span');
        caption.className = read.digit === result.digit ? 'read' : 'read wrong';
        caption.textContent = `${read.digit} · ${percent(read.confidence)}`;
        caption.title = `The classifier reads ${read.digit} (${percent(read.confidence)})`;
        tile.append(caption);
        label += `, read as ${read.digit} (${percent(read.confidence)})`;
      }
      tile.setAttribute('aria-label', label);
      if (stepsSheet) tile.addEventListener('click', () => select(i));
      tiles.append(tile);
      tileCanvases.push(canvas);
    }

    panel.dataset.state = 'done';
    if (!stepsSheet) return;

    // The denoising: row s of the steps sheet is every digit as estimated after step s+1.
    film.hidden = false;
    scrub.max = String(steps);
    const frameCanvases = [];
    frames.replaceChildren();
    for (let s = 0; s < steps; s++) {
      const frame = document.createElement('button');
      frame.type = 'button';
      frame.className = 'frame';
      frame.setAttribute('aria-label', `Step ${s + 1} of ${steps}`);
      frame.title = `step ${s + 1}`;
      const canvas = digitCanvas();
      frame.append(canvas);
      frame.addEventListener('click', () => { stop(); show(s + 1); });
      frames.append(frame);
      frameCanvases.push(canvas);
    }

    function show(k) {
      step = k;
      tileCanvases.forEach((canvas, i) => drawCell(canvas, stepsSheet, i, k - 1));
      [...frames.children].forEach((frame, s) => frame.classList.toggle('current', s === k - 1));
      scrub.value = String(k);
      stepLabel.textContent = k === steps ? `step ${k} of ${steps}: the digits` : `step ${k} of ${steps}`;
    }

    function select(i) {
      selected = i;
      [...tiles.children].forEach((tile, j) => tile.classList.toggle('selected', j === i));
      frameCanvases.forEach((canvas, s) => drawCell(canvas, stepsSheet, selected, s));
    }

    function stop() {
      clearInterval(timer);
      timer = null;
      playButton.textContent = '▶ Play';
      panel.dataset.playing = 'false';
    }

    function play() {
      stop();
      let k = 1;
      show(k);
      panel.dataset.playing = 'true';
      playButton.textContent = '■ Stop';
      timer = setInterval(() => {
        k += 1;
        show(k);
        if (k >= steps) stop();
      }, FRAME_MS);
    }

    playButton.onclick = () => (timer ? stop() : play());
    scrub.oninput = () => { stop(); show(Number(scrub.value)); };
    select(selected);
    show(step);
    if (!reducedMotion) play();
    else panel.dataset.playing = 'false';
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    formError.hidden = true;
    let request;
    try {
      request = {
        digit: Number($('input[name="digit"]:checked').value),
        count: integerField('count', 1, limits.max_count, 'How many'),
        seed: integerField('seed', 0, limits.max_seed, 'The seed'),
      };
    } catch (err) {
      formError.textContent = err.message;
      formError.hidden = false;
      return;
    }
    const choice = $('input[name="model"]:checked').value;
    const keys = choice === 'both' ? ['diffusion', 'gan'] : [choice];
    results.replaceChildren();
    const button = $('#generate');
    button.disabled = true;
    try {
      await Promise.all(keys.map((key) => runPanel(makePanel(key), key, request)));
    } finally {
      button.disabled = false;
    }
  });

  // ---------------------------------------------------------------------------------------
  // What the server has loaded
  // ---------------------------------------------------------------------------------------
  function chip(name, ready, error) {
    const item = document.createElement('li');
    item.className = ready ? 'ready' : 'missing';
    item.textContent = `${name}${ready ? '' : ': missing'}`;
    if (error) item.title = error;
    return item;
  }

  function noticeFor(id, lines) {
    const notice = $(`#${id}`);
    notice.replaceChildren(...lines.map((line) => {
      const part = document.createElement('span');
      part.className = 'notice-line';
      setMessage(part, line);
      return part;
    }));
    notice.hidden = !lines.length;
  }

  async function loadStatus() {
    const status = $('#status');
    try {
      const models = await api('/api/models');
      limits = models.limits;
      $('#count').max = String(limits.max_count);
      $('#seed').max = String(limits.max_seed);
      generators = Object.fromEntries(models.generators.map((g) => [g.key, g]));
      const classifier = models.classifier;
      status.replaceChildren(
        chip(`classifier${classifier.name ? ` (${classifier.name})` : ''}`, classifier.ready, classifier.error),
        ...models.generators.map((g) => chip(g.name, g.ready, g.error)));
      if (!classifier.ready) {
        const text = `The classifier is not loaded, so nothing can be read: ${classifier.error}`;
        noticeFor('draw-notice', [text]);
        noticeFor('upload-notice', [text]);
        $('#draw-card').classList.add('unavailable');
        $('#upload-card').classList.add('unavailable');
        fileInput.disabled = true;
      }
      const missing = models.generators.filter((g) => !g.ready);
      noticeFor('generate-notice', missing.map((g) => `${g.name} is not loaded: ${g.error}`));
      const gan = generators.gan;
      if (gan && !gan.ready && generators.diffusion && generators.diffusion.ready) {
        $('#model-diffusion').checked = true;
      }
      document.body.dataset.ready = 'true';
    } catch (err) {
      status.replaceChildren(chip('server not answering', false, err.message));
    }
  }

  loadStatus();
})();
