// The Snake page: load an exported Q-network with TF.js, let it play, show its Q-values.
//
// The model comes from model/model.json (written by scripts/export_tfjs.py, served by
// scripts/serve_web.py); its userDefinedMetadata.env holds the board settings of the run
// (height, width, num_fruits, init_len). The policy is greedy: argmax of the three Q-values for
// go straight / turn left / turn right, as the book's demo plays.
//
// Test hooks (used by tests/scripts/test_web.py through headless Chromium):
// * window.playgradTest(board) -> {action, qValues} for board = {snake: [[r, c], ...] head first,
//   direction: 0..3, fruits: [[r, c], ...]}.
// * index.html?test=<url of a JSON file {boards: [...], games: [{seed, steps}]}> runs every case
//   once the model is loaded and writes the results as JSON into <pre id="test-results">.
(function () {
  'use strict';

  const {SnakeGame, parseSeed, ACTION_NAMES} = window.PlaygradSnake;
  const CANVAS_PX = 400;
  const STEP_MS = 100;  // the book's demo plays one move every 100 ms
  let model = null;
  let game = null;
  let timer = null;
  let envConfig = {height: 9, width: 9, numFruits: 1, initLen: 2};

  const $ = (id) => document.getElementById(id);

  function setStatus(text) {
    $('status').textContent = text;
  }

  // Q-values (3,) of the game's current board; the network sees one board, (1, H, W, 2).
  function qValuesOf(g) {
    return tf.tidy(() => {
      const x = tf.tensor4d(g.getState(), [1, g.height, g.width, 2]);
      return Array.from(model.predict(x).dataSync());
    });
  }

  function argmax(values) {
    let best = 0;
    for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    return best;
  }

  function draw(qValues) {
    const canvas = $('board');
    const ctx = canvas.getContext('2d');
    const cellPx = CANVAS_PX / Math.max(game.height, game.width);
    ctx.fillStyle = '#f4f4f4';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = '#ddd';
    for (let r = 0; r <= game.height; r++) {
      ctx.beginPath(); ctx.moveTo(0, r * cellPx); ctx.lineTo(game.width * cellPx, r * cellPx); ctx.stroke();
    }
    for (let c = 0; c <= game.width; c++) {
      ctx.beginPath(); ctx.moveTo(c * cellPx, 0); ctx.lineTo(c * cellPx, game.height * cellPx); ctx.stroke();
    }
    const showQ = qValues && $('show-q').checked && !game.dead;
    // The cells the three actions lead to (those on the board), with their Q-values.
    const targets = showQ ? game.actionCells().map(([r, c], a) => ({r, c, q: qValues[a]}))
      .filter(({r, c}) => r >= 0 && r < game.height && c >= 0 && c < game.width) : [];
    // Shade each target cell, greener for a higher Q-value (under the fruit and the snake)...
    const lo = showQ ? Math.min(...qValues) : 0;
    const hi = showQ ? Math.max(...qValues) : 0;
    for (const {r, c, q} of targets) {
      const t = hi > lo ? (q - lo) / (hi - lo) : 1;
      ctx.fillStyle = `rgba(0, 160, 0, ${0.15 + 0.6 * t})`;
      ctx.fillRect(c * cellPx, r * cellPx, cellPx, cellPx);
    }
    for (const [r, c] of game.fruits) {
      ctx.fillStyle = 'green';
      ctx.beginPath();
      ctx.arc((c + 0.5) * cellPx, (r + 0.5) * cellPx, cellPx * 0.35, 0, 2 * Math.PI);
      ctx.fill();
    }
    game.snake.forEach(([r, c], i) => {
      ctx.fillStyle = i === 0 ? 'orange' : 'blue';
      ctx.fillRect(c * cellPx + 2, r * cellPx + 2, cellPx - 4, cellPx - 4);
    });
    // ...and print the values last, on a light box: a fruit on the cell used to hide its label.
    ctx.font = `${Math.round(cellPx / 3.2)}px sans-serif`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    for (const {r, c, q} of targets) {
      const text = q.toFixed(2);
      const w = ctx.measureText(text).width + 6;
      const h = cellPx / 3.2 + 4;
      ctx.fillStyle = 'rgba(255, 255, 255, 0.85)';
      ctx.fillRect((c + 0.5) * cellPx - w / 2, (r + 0.5) * cellPx - h / 2, w, h);
      ctx.fillStyle = '#000';
      ctx.fillText(text, (c + 0.5) * cellPx, (r + 0.5) * cellPx);
    }
    const over = game.dead ? '. Game Over!' : '';
    setStatus(`Reward=${game.episodeReturn.toFixed(1)}; Fruits=${game.fruitsEaten}${over}`);
    if (qValues) {
      $('q-values').textContent = ACTION_NAMES.map((n, a) => `${n}: ${qValues[a].toFixed(2)}`).join('   ');
    }
  }

  function step() {
    if (game.dead) {
      stop();
      draw(null);
      return;
    }
    const q = qValuesOf(game);
    game.step(argmax(q));
    draw(game.dead ? null : qValuesOf(game));
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    $('auto').textContent = 'Auto Play';
  }

  function newGame() {
    stop();
    let seed;
    try {
      seed = parseSeed($('seed').value);
    } catch (err) {
      setStatus(err.message);  // the board stays as it was
      return;
    }
    game = new SnakeGame({...envConfig, seed});
    draw(qValuesOf(game));
  }

  // ------------------------------------------------------------------------------ test hooks
  function playgradTest(board) {
    const g = new SnakeGame({...envConfig, seed: 0});
    g.setBoard(board.snake, board.direction, board.fruits);
    const qValues = qValuesOf(g);
    return {action: argmax(qValues), qValues};
  }

  // Greedy play from reset(seed) for at most `steps` moves: the actions, rewards and fruits eaten.
  function playSeeded(seed, steps) {
    const g = new SnakeGame({...envConfig, seed});
    const actions = [];
    const rewards = [];
    const start = {snake: g.snake.map((c) => [...c]), fruits: g.fruits.map((c) => [...c])};
    for (let i = 0; i < steps && !g.dead; i++) {
      const a = argmax(qValuesOf(g));
      actions.push(a);
      rewards.push(g.step(a).reward);
    }
    return {seed, start, actions, rewards, fruitsEaten: g.fruitsEaten, dead: g.dead};
  }

  async function runTests(url) {
    const out = $('test-results');
    try {
      const cases = await (await fetch(url)).json();
      const boards = cases.boards.map(playgradTest);
      const games = cases.games.map(({seed, steps}) => playSeeded(seed, steps));
      out.textContent = JSON.stringify({ok: true, backend: tf.getBackend(), boards, games});
    } catch (err) {
      out.textContent = JSON.stringify({ok: false, error: String(err && err.stack ? err.stack : err)});
    }
  }

  async function main() {
    try {
      // The CPU backend computes in float32 like NumPy; WebGL may use float16 textures and could flip
      // near-ties, and this network is small enough for the CPU.
      await tf.setBackend('cpu');
      model = await tf.loadLayersModel('model/model.json');
      const meta = model.getUserDefinedMetadata() || {};
      const env = meta.env || {};
      envConfig = {height: env.height ?? 9, width: env.width ?? 9, numFruits: env.num_fruits ?? 1,
                   initLen: env.init_len ?? 2};
      $('model-info').textContent = `${meta.agent || 'model'} ${meta.network || ''} from ${meta.source || '?'}`;
    } catch (err) {
      setStatus(`Could not load model/model.json: ${err}`);
      $('test-results').textContent = JSON.stringify({ok: false, error: `model load failed: ${err}`});
      return;
    }
    window.playgradTest = playgradTest;
    $('auto').onclick = () => {
      if (timer !== null) { stop(); return; }
      if (game.dead) newGame();
      timer = setInterval(step, STEP_MS);
      $('auto').textContent = 'Stop';
    };
    $('step').onclick = () => { stop(); step(); };
    $('reset').onclick = newGame;
    $('show-q').onchange = () => draw(game.dead ? null : qValuesOf(game));
    newGame();
    const testUrl = new URLSearchParams(window.location.search).get('test');
    if (testUrl) await runTests(testUrl);
  }

  window.addEventListener('load', main);
}());
