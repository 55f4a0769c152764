"""The snake game of the TensorFlow.js book (tfjs-examples ``snake-dqn``) for N boards at once.

Every board's state is a few fixed-size arrays, and one :meth:`SnakeCore.step` advances all boards
with array ops (NumPy or CuPy), no Python loop over boards:

* ``enter_time`` int32 (N, H*W): the clock value at which the head last entered each cell. A cell
  holds the snake when ``clock - enter_time < length`` (age 0 is the head, age ``length - 1`` the
  tail). Moving is then O(1) per board: write the new head's time, advance the clock; the tail
  leaves by ageing out, and eating just increments ``length``.
* ``fruit`` bool (N, H*W), ``clock``/``length``/``head``/``direction`` (N,), ``dead`` bool (N,).

Rules (spec: ``snake_game.js``):

* Actions are relative: 0 straight, 1 turn left, 2 turn right. Turning left maps
  right -> up -> left -> down -> right. The turn happens first, then the head moves one cell.
* Death: the head leaves the board, or lands on any cell of the current snake other than its
  head, *including the current tail cell* (the book checks before the tail moves).
* Eating: the snake grows (its tail stays) and a new fruit appears uniformly at random on an
  empty cell (none if the board is full).
* Rewards: +10 for the step that eats, -10 for the step that dies, -0.2 otherwise.
* Start: a straight horizontal snake of ``init_len`` cells heading right, head at row
  ``y ~ U{0..H-1}``, column ``x ~ U{init_len-1..W-1}``, body to its left; then ``num_fruits``
  fruits placed one after another on empty cells.

Random numbers come from each board's own stream (:class:`envs._common.WorldRNG`): two draws at
reset for the head, then one per fruit placed, so a board's game depends only on its seed and
its actions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs._common import WorldRNG

FRUIT_REWARD = 10.0
DEATH_REWARD = -10.0
NO_FRUIT_REWARD = -0.2

ACTION_GO_STRAIGHT, ACTION_TURN_LEFT, ACTION_TURN_RIGHT = 0, 1, 2
NUM_ACTIONS = 3
# Absolute directions, clockwise; rows grow downwards, so "up" is row - 1.
UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
DIRECTION_NAMES = ("up", "right", "down", "left")
_DY = (-1, 0, 1, 0)
_DX = (0, 1, 0, -1)
# _TURN[direction * 3 + action] -> new direction; left is one step counter-clockwise.
_TURN = tuple((d, (d - 1) % 4, (d + 1) % 4)[a] for d in range(4) for a in range(3))
_NEVER = -(2**30)  # enter_time of a cell the snake has not visited this episode


def check_board(height: int, width: int, num_fruits: int, init_len: int) -> None:
    """Raise ``ValueError`` naming the argument when a board configuration cannot be played."""
    for name, value, low in (("height", height, 1), ("width", width, 1), ("num_fruits", num_fruits, 0),
                             ("init_len", init_len, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"snake {name} must be an int >= {low}, got {value!r}")
    if init_len > width:
        raise ValueError(f"snake init_len={init_len} does not fit in width={width} (the snake starts horizontal)")
    if init_len + num_fruits > height * width:
        raise ValueError(
            f"snake num_fruits={num_fruits} plus init_len={init_len} exceed the {height}x{width} board's cells"
        )


class SnakeCore:
    """``num_worlds`` snake boards of ``height`` x ``width`` cells, stepped together."""

    def __init__(self, num_worlds: int, height: int = 9, width: int = 9, num_fruits: int = 1, init_len: int = 2,
                 xp: Any = np):
        check_board(height, width, num_fruits, init_len)
        self.xp = xp
        self.num_worlds = n = num_worlds
        self.height, self.width, self.num_cells = height, width, height * width
        self.num_fruits, self.init_len = num_fruits, init_len
        self.rng = WorldRNG(n, xp)
        i32 = xp.int32
        self.enter_time = xp.full((n, self.num_cells), _NEVER, dtype=i32)
        self.fruit = xp.zeros((n, self.num_cells), dtype=bool)
        self.clock = xp.zeros(n, dtype=i32)
        self.length = xp.full(n, init_len, dtype=i32)
        self.head_y = xp.zeros(n, dtype=i32)
        self.head_x = xp.zeros(n, dtype=i32)
        self.direction = xp.full(n, RIGHT, dtype=i32)
        self.dead = xp.zeros(n, dtype=bool)
        self.fruits_eaten = xp.zeros(n, dtype=i32)
        self._base = xp.arange(n, dtype=xp.int64) * self.num_cells  # offset of each board in the flat views
        self._turn = xp.asarray(_TURN, dtype=i32)
        self._dy = xp.asarray(_DY, dtype=i32)
        self._dx = xp.asarray(_DX, dtype=i32)
        self._all_active = xp.ones(n, dtype=bool)
        self._body_age = xp.arange(init_len, dtype=i32)

    # -- views --------------------------------------------------------------------------------
    @property
    def head(self) -> Any:
        """Flat cell index of each head, int (N,)."""
        return self.head_y * self.width + self.head_x

    def occupied(self, worlds: Any = None) -> Any:
        """Snake cells, bool (n, H*W), for all boards or the listed ones (head included)."""
        if worlds is None:
            return (self.clock[:, None] - self.enter_time) < self.length[:, None]
        return (self.clock[worlds, None] - self.enter_time[worlds]) < self.length[worlds, None]

    # -- reset and fruit ----------------------------------------------------------------------
    def reset_worlds(self, worlds: Any) -> None:
        """Start new games on the boards with indices ``worlds`` (int array)."""
        xp = self.xp
        u = self.rng.uniform(worlds, 2)
        y = (u[0] * self.height).astype(xp.int32)
        x = (self.init_len - 1 + u[1] * (self.width - self.init_len + 1)).astype(xp.int32)
        self.enter_time[worlds] = _NEVER
        # Body to the left of the head; the cell k steps behind the head entered k moves ago.
        cells = self._base[worlds, None] + (y * self.width + x)[:, None] - self._body_age
        self.enter_time.reshape(-1)[cells] = -self._body_age
        self.clock[worlds] = 0
        self.length[worlds] = self.init_len
        self.head_y[worlds], self.head_x[worlds] = y, x
        self.direction[worlds] = RIGHT
        self.dead[worlds] = False
        self.fruits_eaten[worlds] = 0
        self.fruit[worlds] = False
        for _ in range(self.num_fruits):
            self._place_fruit(worlds)

    def set_board(self, world: int, snake: list[tuple[int, int]], direction: int,
                  fruits: list[tuple[int, int]]) -> None:
        """Put board ``world`` in a given position (for tests, puzzles and demos).

        ``snake`` lists (row, col) cells from head to tail, ``direction`` is UP/RIGHT/DOWN/LEFT,
        ``fruits`` lists (row, col) cells. Draws no random numbers.
        """
        cells = [r * self.width + c for r, c in snake + fruits]
        if any(not (0 <= r < self.height and 0 <= c < self.width) for r, c in snake + fruits):
            raise ValueError(f"a cell of {snake + fruits} is off the {self.height}x{self.width} board")
        if len(set(cells)) != len(cells) or not snake:
            raise ValueError("snake cells and fruit cells must be distinct, and the snake needs a head")
        self.enter_time[world] = _NEVER
        for age, (r, c) in enumerate(snake):
            self.enter_time[world, r * self.width + c] = -age
        self.clock[world] = 0
        self.length[world] = len(snake)
        self.head_y[world], self.head_x[world] = snake[0]
        self.direction[world] = direction
        self.dead[world] = False
        self.fruit[world] = False
        for r, c in fruits:
            self.fruit[world, r * self.width + c] = True

    def _place_fruit(self, worlds: Any) -> None:
        """Put one fruit on a uniformly chosen empty cell of each listed board (one draw each)."""
        xp = self.xp
        empty = ~(self.occupied(worlds) | self.fruit[worlds])
        count = empty.sum(axis=1)
        k = (self.rng.uniform(worlds, 1)[0] * count).astype(xp.int64)  # rank among empty cells
        # The (k+1)-th empty cell sits right after the prefix of cells whose running count is <= k.
        cell = (xp.cumsum(empty, axis=1) <= k[:, None]).sum(axis=1)
        ok = count > 0
        self.fruit.reshape(-1)[(self._base[worlds] + cell)[ok]] = True

    # -- step ---------------------------------------------------------------------------------
    def step(self, actions: Any, active: Any = None):
        """Turn by ``actions`` (int (N,): 0 straight, 1 left, 2 right), move, eat or die.

        Boards where ``active`` (bool (N,)) is False do not move and draw no random numbers.
        Returns ``(reward float32 (N,), terminated bool (N,))``.
        """
        xp = self.xp
        if active is None:
            active = self._all_active
        direction = self._turn[self.direction * 3 + actions]
        self.direction = direction
        ny = self.head_y + self._dy[direction]
        nx = self.head_x + self._dx[direction]
        # Negative coordinates wrap to huge unsigned values, so one compare per axis finds the walls.
        off_board = (ny.astype(xp.uint32) >= self.height) | (nx.astype(xp.uint32) >= self.width)
        head = self.head_y * self.width + self.head_x
        cell = xp.where(off_board, head, ny * self.width + nx)
        flat = self._base + cell
        # The tail cell counts (age length-1 < length): the book checks before the tail moves.
        died = off_board | ((self.clock - self.enter_time.reshape(-1)[flat]) < self.length)
        died &= active
        moved = active & ~died
        fruit_flat = self.fruit.reshape(-1)
        ate = fruit_flat[flat] & moved

        self.clock += moved
        target = xp.where(moved, flat, self._base + head)  # boards that stay rewrite their head's time
        self.enter_time.reshape(-1)[target] = self.clock
        self.head_y = xp.where(moved, ny, self.head_y)
        self.head_x = xp.where(moved, nx, self.head_x)
        self.length += ate
        self.dead |= died

        eaters = xp.flatnonzero(ate)
        if eaters.size:
            fruit_flat[flat[eaters]] = False
            self.fruits_eaten[eaters] += 1
            self._place_fruit(eaters)

        reward = xp.where(ate, xp.float32(FRUIT_REWARD), xp.float32(NO_FRUIT_REWARD))
        reward[died] = DEATH_REWARD
        return reward, died

    # -- observation --------------------------------------------------------------------------
    def observe(self) -> Any:
        """The book's state tensor, float32 (N, H, W, 2).

        Channel 0: 2 at the head, 1 on the body, 0 elsewhere; channel 1: 1 on fruits. A board whose
        snake has died observes all zeros (the book's encoding of the missing terminal state).
        """
        xp = self.xp
        n = self.num_worlds
        obs = xp.empty((n, self.num_cells, 2), dtype=xp.float32)
        obs[:, :, 0] = self.occupied()
        obs[:, :, 1] = self.fruit
        obs.reshape(-1)[(self._base + self.head_y * self.width + self.head_x) * 2] = 2.0
        obs[self.dead] = 0.0
        return obs.reshape(n, self.height, self.width, 2)
