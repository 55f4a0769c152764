// The snake game of envs/snake/core.py, ported rule for rule, so a policy trained in Python plays
// the same game in the browser.
//
// Rules (the TensorFlow.js book's snake-dqn/snake_game.js):
// * actions are relative: 0 straight, 1 turn left, 2 turn right; the turn happens, then the head
//   moves one cell. Directions are clockwise: 0 up, 1 right, 2 down, 3 left (rows grow downwards).
// * death: the head leaves the board or lands on any snake cell, the tail cell included (the check
//   happens before the tail moves).
// * eating grows the snake (the tail stays) and puts a new fruit on a uniformly chosen empty cell.
// * rewards: +10 eat, -10 die, -0.2 otherwise.
// * start: a horizontal snake of initLen cells heading right, head at row floor(u0 * H), column
//   floor(initLen - 1 + u1 * (W - initLen + 1)), body to its left; then numFruits fruits.
//
// Random numbers: envs/_common.py's WorldRNG, a SplitMix64 counter stream per board, with
// reset(seed=s) keyed as seed_to_key(s). The same seed therefore gives the same start and the same
// fruit positions as gym.make("envs/Snake-v0").reset(seed=s), and the same actions the same game.
//
// Observation (getState): Float32Array of H * W * 2 (NHWC, one board): channel 0 is 2 on the head,
// 1 on the body; channel 1 is 1 on fruits; all zeros once the snake has died.
(function (root, factory) {
  if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.PlaygradSnake = factory();
  }
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  const MASK64 = (1n << 64n) - 1n;
  const GAMMA = 0x9E3779B97F4A7C15n;
  const MUL1 = 0xBF58476D1CE4E5B9n;
  const MUL2 = 0x94D049BB133111EBn;
  const TWO_POW_M53 = 1 / 2 ** 53;

  const FRUIT_REWARD = 10;
  const DEATH_REWARD = -10;
  const NO_FRUIT_REWARD = -0.2;
  const DY = [-1, 0, 1, 0];
  const DX = [0, 1, 0, -1];
  const ACTION_NAMES = ['straight', 'left', 'right'];
  const DIRECTION_NAMES = ['up', 'right', 'down', 'left'];

  function mix64(z) {
    z = ((z ^ (z >> 30n)) * MUL1) & MASK64;
    z = ((z ^ (z >> 27n)) * MUL2) & MASK64;
    return z ^ (z >> 31n);
  }

  // seed_to_key: two finalizer rounds so neighbouring seeds give unrelated keys.
  function seedToKey(seed) {
    const s = BigInt(seed) & MASK64;
    return mix64((mix64((s * GAMMA + GAMMA) & MASK64) + GAMMA) & MASK64);
  }

  class WorldRNG {
    constructor(seed) {
      this.state = seed === undefined || seed === null ?
        BigInt.asUintN(64, BigInt(Math.floor(Math.random() * 2 ** 53)) * 2048n) : seedToKey(seed);
    }

    // One float in [0, 1): mix64(state + GAMMA) >> 11, times 2^-53; the state advances by GAMMA.
    uniform() {
      this.state = (this.state + GAMMA) & MASK64;
      return Number(mix64(this.state) >> 11n) * TWO_POW_M53;
    }
  }

  // The seed typed into the page: '' is null (a random game); otherwise a whole number in
  // [0, 2^64), as envs/_common.seed_to_key takes it. A BigInt, because Number() rounds seeds above
  // 2^53 to a different seed (so a different game than Python's). Anything else throws, with why.
  function parseSeed(text) {
    const t = String(text).trim();
    if (t === '') return null;
    if (!/^\d+$/.test(t) || BigInt(t) > MASK64) throw new Error(`seed must be a whole number in [0, 2^64), got '${t}'`);
    return BigInt(t);
  }

  // turn(direction, action): left is one step counter-clockwise, right one step clockwise.
  function turn(direction, action) {
    if (action === 1) return (direction + 3) % 4;
    if (action === 2) return (direction + 1) % 4;
    return direction;
  }

  class SnakeGame {
    constructor({height = 9, width = 9, numFruits = 1, initLen = 2, seed = null} = {}) {
      if (initLen > width) throw new Error(`initLen=${initLen} does not fit in width=${width}`);
      this.height = height;
      this.width = width;
      this.numFruits = numFruits;
      this.initLen = initLen;
      this.reset(seed);
    }

    reset(seed = null) {
      if (seed !== null && seed !== undefined) this.rng = new WorldRNG(seed);
      else if (!this.rng) this.rng = new WorldRNG(null);
      const y = Math.floor(this.rng.uniform() * this.height);
      const x = Math.floor(this.initLen - 1 + this.rng.uniform() * (this.width - this.initLen + 1));
      this.snake = [];  // [row, col] from head to tail
      for (let k = 0; k < this.initLen; k++) this.snake.push([y, x - k]);
      this.direction = 1;  // right
      this.fruits = [];
      this.dead = false;
      this.fruitsEaten = 0;
      this.steps = 0;
      this.episodeReturn = 0;
      for (let i = 0; i < this.numFruits; i++) this.placeFruit();
    }

    // Put the board in a given position (snake head first, direction 0..3, fruit cells); no draws.
    setBoard(snake, direction, fruits) {
      this.snake = snake.map(([r, c]) => [r, c]);
      this.direction = direction;
      this.fruits = fruits.map(([r, c]) => [r, c]);
      this.dead = false;
    }

    isSnake(r, c) {
      return this.snake.some(([sr, sc]) => sr === r && sc === c);
    }

    fruitIndex(r, c) {
      return this.fruits.findIndex(([fr, fc]) => fr === r && fc === c);
    }

    // One draw, then the (k+1)-th empty cell in row-major order, k = floor(u * number of empty cells).
    placeFruit() {
      const u = this.rng.uniform();
      const empty = [];
      for (let r = 0; r < this.height; r++) {
        for (let c = 0; c < this.width; c++) {
          if (!this.isSnake(r, c) && this.fruitIndex(r, c) < 0) empty.push([r, c]);
        }
      }
      if (empty.length === 0) return;
      this.fruits.push(empty[Math.floor(u * empty.length)]);
    }

    // Returns {reward, done, fruitEaten}.
    step(action) {
      if (this.dead) return {reward: 0, done: true, fruitEaten: false};
      this.direction = turn(this.direction, action);
      const [hy, hx] = this.snake[0];
      const ny = hy + DY[this.direction];
      const nx = hx + DX[this.direction];
      this.steps += 1;
      if (ny < 0 || ny >= this.height || nx < 0 || nx >= this.width || this.isSnake(ny, nx)) {
        this.dead = true;
        this.episodeReturn += DEATH_REWARD;
        return {reward: DEATH_REWARD, done: true, fruitEaten: false};
      }
      this.snake.unshift([ny, nx]);
      const f = this.fruitIndex(ny, nx);
      if (f >= 0) {
        this.fruits.splice(f, 1);
        this.fruitsEaten += 1;
        this.placeFruit();
        this.episodeReturn += FRUIT_REWARD;
        return {reward: FRUIT_REWARD, done: false, fruitEaten: true};
      }
      this.snake.pop();
      this.episodeReturn += NO_FRUIT_REWARD;
      return {reward: NO_FRUIT_REWARD, done: false, fruitEaten: false};
    }

    getState() {
      const obs = new Float32Array(this.height * this.width * 2);
      if (this.dead) return obs;
      this.snake.forEach(([r, c], i) => { obs[(r * this.width + c) * 2] = i === 0 ? 2 : 1; });
      for (const [r, c] of this.fruits) obs[(r * this.width + c) * 2 + 1] = 1;
      return obs;
    }

    // The cells ahead, to the left and to the right of the head (where each action would lead).
    actionCells() {
      const [hy, hx] = this.snake[0];
      return [0, 1, 2].map((a) => {
        const d = turn(this.direction, a);
        return [hy + DY[d], hx + DX[d]];
      });
    }
  }

  return {SnakeGame, WorldRNG, seedToKey, parseSeed, turn, ACTION_NAMES, DIRECTION_NAMES,
          FRUIT_REWARD, DEATH_REWARD, NO_FRUIT_REWARD};
}));
