"""The window people watch in: an env's picture, the agent's panel beside it and the key strip under both.

``play.py`` (a person or an agent at the keys) and ``evaluate.py --render`` (scoring episodes one at a time)
draw through the same :class:`PlayWindow`, so an agent looks the same wherever it is watched:

* :class:`PlayWindow` composes one whole frame per :meth:`~PlayWindow.show` and flips the display once;
* :func:`draw_panel` fills the panel from an agent's ``explain(obs)`` (Q-values, action probabilities, or a
  continuous action with its critic's value);
* :func:`agent_policy` turns an agent into the ``policy(obs)`` / ``overlay(obs)`` pair the loops call;
* :func:`key_help` is the strip's text for a game.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from envs.games import GAMES
from rl.console import format_number

PANEL_WIDTH_PX = 300
PANEL_BACKGROUND = (28, 30, 38)
HELP_BACKGROUND = (232, 232, 236)
_PANEL_TEXT = (225, 225, 230)
_PANEL_DIM = (150, 152, 165)
_CHOSEN = (255, 205, 70)
_BAR = (90, 180, 235)
_BAR_NEG = (225, 105, 95)
_BAR_TRACK = (52, 55, 68)
_MONO_FONTS = "dejavusansmono,liberationmono,notosansmono,couriernew,monospace"


def key_help(game: str, env: Any, agent: bool) -> str:
    """The key strip under the picture: the game's keys (its ``controls.key_help``) or, for an agent, none."""
    common = "R restart   P pause   Esc quit"
    if agent:
        return f"agent playing   {common}"
    return f"{importlib.import_module(GAMES[game].controls).key_help(env)}   {common}"


def _font(size_px: int, mono: bool = True) -> Any:
    """A monospace system font (columns line up), else pygame's bundled one; cached per size."""
    import pygame  # noqa: PLC0415

    key = (size_px, mono)
    if key not in _FONTS:
        if not _FONTS:
            # A Font outlives pygame.quit() as a dangling handle (using it segfaults): whoever quits pygame next
            # (an env's renderer, the level editor, this window) empties the cache. Registered again each fill.
            pygame.register_quit(_FONTS.clear)
        pygame.font.init()
        path = pygame.font.match_font(_MONO_FONTS) if mono else None
        _FONTS[key] = pygame.font.Font(path, size_px)
    return _FONTS[key]


_FONTS: dict[tuple[int, bool], Any] = {}


class PlayWindow:
    """The play window. Each :meth:`show` composes one whole frame -- the env's picture, the agent panel
    beside it (when there is an agent) and the key strip under both -- and flips the display once.

    The envs' own ``"human"`` mode flips the display inside ``step()`` and then waits out the frame time;
    a panel drawn after that was on screen for a moment only, and the next step wiped it.
    """

    def __init__(self, title: str, help_text: str, panel: bool, action_space: Any = None):
        import pygame  # noqa: PLC0415

        self._pg = pygame
        self.title, self.help_text, self.panel = title, help_text, panel
        self.action_space = action_space
        pygame.display.init()
        self._surface = None
        self._clock = pygame.time.Clock()

    def _layout(self, world_w: int, world_h: int) -> tuple[int, int, int]:
        help_h = _font(14).get_linesize() + 8
        width = world_w + (PANEL_WIDTH_PX if self.panel else 0)
        # The key strip wraps onto more lines when a small world leaves it too little width.
        lines = _wrap(self.help_text, _font(14), width - 12)
        return width, max(world_h, 60) + help_h * len(lines), help_h

    def show(self, frame: np.ndarray, fps: float, caption: str = "", banner: str = "",
             explanation: dict[str, Any] | None = None, action: Any = None, names: Sequence[str] = ()) -> None:
        """Draw the env's ``frame`` (uint8 (H, W, 3)), the panel of ``explanation`` with ``action`` marked,
        the key strip and ``banner`` (a line over the picture, e.g. "paused"); flip; wait out 1/``fps`` s."""
        pg = self._pg
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        world_h, world_w = frame.shape[:2]
        width, height, help_h = self._layout(world_w, world_h)
        if self._surface is None or self._surface.get_size() != (width, height):
            self._surface = pg.display.set_mode((width, height))
        surf = self._surface
        surf.fill(PANEL_BACKGROUND)
        surf.blit(pg.image.frombuffer(frame.tobytes(), (world_w, world_h), "RGB"), (0, 0))
        if banner:
            _draw_banner(surf, banner, pg.Rect(0, 0, world_w, world_h))
        if self.panel:
            panel_rect = pg.Rect(world_w, 0, PANEL_WIDTH_PX, max(world_h, 60))
            draw_panel(surf.subsurface(panel_rect), explanation or {}, action, names, self.action_space)
        help_top = max(world_h, 60)
        pg.draw.rect(surf, HELP_BACKGROUND, pg.Rect(0, help_top, width, height - help_top))
        for k, line in enumerate(_wrap(self.help_text, _font(14), width - 12)):
            surf.blit(_font(14).render(line, True, (40, 40, 48)), (6, help_top + 4 + k * help_h))
        pg.display.set_caption(f"{self.title}   {caption}" if caption else self.title)
        pg.event.pump()
        pg.display.flip()
        self._clock.tick(fps)

    def events(self) -> tuple[bool, list[int]]:
        """What happened since the last frame: (the window was closed, the keys pressed in order, ``pygame.K_*``)."""
        closed, keys = False, []
        for event in self._pg.event.get():
            if event.type == self._pg.QUIT:
                closed = True
            elif event.type == self._pg.KEYDOWN:
                keys.append(event.key)
        return closed, keys

    def close(self) -> None:
        self._pg.display.quit()


def _wrap(text: str, font: Any, width_px: int) -> list[str]:
    """``text`` broken at runs of 3 spaces (between key groups) into lines at most ``width_px`` wide."""
    lines: list[str] = []
    for part in text.split("   "):
        if lines and font.size(lines[-1] + "   " + part)[0] <= width_px:
            lines[-1] += "   " + part
        else:
            lines.append(part)
    return lines or [""]


def _draw_banner(surface: Any, text: str, area: Any) -> None:
    import pygame  # noqa: PLC0415

    label = _font(16).render(text, True, (255, 255, 255))
    box = label.get_rect(center=area.center).inflate(20, 12)
    shade = pygame.Surface(box.size, pygame.SRCALPHA)
    shade.fill((0, 0, 0, 170))
    surface.blit(shade, box.topleft)
    surface.blit(label, label.get_rect(center=area.center))


def draw_panel(surface: Any, explanation: dict[str, Any], action: Any, names: Sequence[str] = (),
               action_space: Any = None) -> None:
    """Fill ``surface`` (the panel) with what the agent sees in the state on screen.

    ``explanation`` is an agent's ``explain(obs)``: ``{"q_values": (A,)}`` (bars span the row's min..max, so
    Q-values of 96.2 / 96.3 / 97.6 do not look alike), ``{"probs": (A,)}`` (bars span 0..1), or, for a
    continuous ``action`` (act_dim,), ``{"q_value": (1,)}`` with the action drawn as signed bars scaled to
    ``action_space``'s bounds. The discrete ``action`` the agent takes is marked with an arrow.
    """
    import pygame  # noqa: PLC0415

    surface.fill(PANEL_BACKGROUND)
    font, small = _font(15), _font(12)
    line_h = font.get_linesize() + 4
    pad, x, y = 10, 10, 10
    act = None if action is None else np.asarray(action)
    continuous = act is not None and np.issubdtype(act.dtype, np.floating) and act.size > 0
    label_w = max(font.size(n)[0] for n in names) if names else font.size("action 0")[0]
    value_w = font.size("-0000.00")[0]
    bar_x = x + 16 + label_w + 8 + value_w + 10
    bar_w = max(20, surface.get_width() - bar_x - pad)

    def row(label: str, value: float, fill: float, chosen: bool, signed: bool = False, decimals: int = 2) -> None:
        nonlocal y
        colour = _CHOSEN if chosen else _PANEL_TEXT
        if chosen:  # an arrow: every font has the shape, not every font has a "▶" glyph
            mid = y + line_h // 2 - 2
            pygame.draw.polygon(surface, _CHOSEN, [(x, mid - 5), (x + 9, mid), (x, mid + 5)])
        surface.blit(font.render(label, True, colour), (x + 16, y))
        text = font.render(format_number(value, decimals, signed=signed), True, colour)
        surface.blit(text, (bar_x - 10 - text.get_width(), y))  # numbers right-aligned in their column
        track = pygame.Rect(bar_x, y + 3, bar_w, line_h - 10)
        pygame.draw.rect(surface, _BAR_TRACK, track)
        if signed:  # from the centre line, right for positive, left for negative
            half = bar_w // 2
            length = int(round(half * min(1.0, abs(fill))))
            bar = pygame.Rect(bar_x + half - (length if fill < 0 else 0), track.top, length, track.height)
            pygame.draw.rect(surface, _BAR_NEG if fill < 0 else _BAR, bar)
            pygame.draw.line(surface, _PANEL_TEXT, (bar_x + half, track.top - 2), (bar_x + half, track.bottom + 1))
        else:
            length = max(2, int(round(bar_w * min(1.0, max(0.0, fill)))))  # the lowest keeps a visible stub
            pygame.draw.rect(surface, _CHOSEN if chosen else _BAR, pygame.Rect(bar_x, track.top, length, track.height))
        y += line_h

    def heading(text: str) -> None:
        nonlocal y
        surface.blit(font.render(text, True, _PANEL_TEXT), (x, y))
        y += line_h + 2

    def note(text: str) -> None:
        nonlocal y
        surface.blit(small.render(text, True, _PANEL_DIM), (x, y))
        y += small.get_linesize() + 2

    def label(i: int) -> str:
        return names[i] if i < len(names) else f"action {i}"

    if continuous:
        values = act.reshape(-1).astype(float)
        high = np.ones_like(values)
        if action_space is not None and getattr(action_space, "high", None) is not None:
            high = np.maximum(np.abs(np.asarray(action_space.high, dtype=float).reshape(-1)), 1e-9)
        heading("action (actor)")
        for i, v in enumerate(values):
            row(label(i), v, v / high[i], chosen=False, signed=True)
        note("bars: the action's -max .. +max")
        if "q_value" in explanation:
            y += 6
            q = float(np.asarray(explanation["q_value"]).reshape(-1)[0])
            surface.blit(font.render(f"critic Q(s, a)  {format_number(q, 2)}", True, _CHOSEN), (x, y))
        return
    chosen = -1 if act is None or act.size != 1 else int(act.reshape(-1)[0])
    if "q_values" in explanation:
        values = np.asarray(explanation["q_values"], dtype=float).reshape(-1)
        low, high = float(values.min()), float(values.max())
        span = high - low
        # Enough decimals that the values differ on screen when they differ at all (up to 4).
        decimals = 2 if span <= 0 else int(min(4, max(2, 1 - np.floor(np.log10(span)))))
        heading("Q-values")
        for i, v in enumerate(values):
            row(label(i), v, (v - low) / span if span > 0 else 1.0, chosen=i == chosen, decimals=decimals)
        note(f"bars: min {format_number(low, decimals)} .. max {format_number(high, decimals)}")
    elif "probs" in explanation:
        values = np.asarray(explanation["probs"], dtype=float).reshape(-1)
        heading("action probabilities")
        for i, v in enumerate(values):
            row(label(i), v, v, chosen=i == chosen)
        note("bars: 0 .. 1")
    else:
        heading("(this agent explains nothing)")
        if chosen >= 0:
            note(f"next action: {label(chosen)}")
        return
    note("arrow: the action it takes next")


def agent_policy(agent: Any) -> tuple[Callable[[Any], Any], Callable[[Any], dict[str, Any]]]:
    """An agent as :func:`run_play` takes it: ``policy(obs)``, its deterministic action for one observation, and
    ``overlay(obs)``, its explanation for the panel (flat arrays)."""

    def policy(obs: Any) -> Any:
        action = agent.act(np.asarray(obs)[None], deterministic=True)[0]
        return action.item() if np.ndim(action) == 0 else action

    def overlay(obs: Any) -> dict[str, Any]:
        return {k: np.asarray(v).reshape(-1) for k, v in agent.explain(np.asarray(obs)).items()}

    return policy, overlay
