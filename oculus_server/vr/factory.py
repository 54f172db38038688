"""Builds a `VRSource` from a short text spec (the daemon's ``--vr`` flag).

Grammar: ``KIND[:ARG][@OPT=VALUE[,OPT=VALUE...]]`` (options may also be separated by ``@``):

==============================  ==========================================================
spec                            source
==============================  ==========================================================
``quest``                       `QuestReader` over USB (``quest:SERIAL`` picks a device)
``quest@ip=10.0.0.2``           `QuestReader` over the network (``adb connect`` first)
``fake_headset[:TRAJ]``         `QuestReader` reading the fake headset process
``scripted:NAME``               `ScriptedSource` (hold, circle, figure8, pick_place)
``keyboard``                    `KeyboardSource` on stdin
``replay:FILE``                 `ReplaySource` over ``replay_loader(FILE)`` (keyword arg)
``webxr``                       `WebXRSource`: a page for the headset's browser (no APK, no adb)
``webxr@bind=0.0.0.0``          `WebXRSource` on the LAN (HTTPS, self-signed certificate)
==============================  ==========================================================

Options per kind (see `OPTIONS`): e.g. ``scripted:pick_place@speed=0.5,loop=1``,
``quest@ip=10.0.0.2,start_app=1``, ``fake_headset:circle@rate=50,drop_after=5``,
``webxr@bind=0.0.0.0,port=8443``.
Keyword arguments of `make_source` go to the constructor and win over spec options.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from oculus_server.errors import ConfigError
from oculus_server.vr.source import VRSource

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_OPTS_RE = re.compile(r"^\w+=[^,@]*(?:[,@]\w+=[^,@]*)*$")


def _bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")


def _opt_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off", "") else float(text)


# kind -> option -> (constructor keyword, converter)
OPTIONS: Mapping[str, Mapping[str, tuple[str, Callable[[str], Any]]]] = {
    "quest": {
        "serial": ("serial", str),
        "ip": ("ip", str),
        "port": ("port", int),
        "adb": ("adb", str),
        "start_app": ("start_app", _bool),
        "stale_timeout": ("stale_timeout_s", float),
        "silent_restart": ("silent_restart_s", _opt_float),
        "backoff_initial": ("backoff_initial_s", float),
        "backoff_max": ("backoff_max_s", float),
    },
    "fake_headset": {
        "rate": ("rate", float),
        "speed": ("speed", float),
        "duration": ("duration", float),
        "drop_after": ("drop_after", float),
        "pause_after": ("pause_after", float),
        "noise": ("noise", int),
        "bad_every": ("bad_every", int),
        "side_order": ("side_order", str),
        "seed": ("seed", int),
        "left": ("left", _bool),
        "ip": ("ip", str),
        "stale_timeout": ("stale_timeout_s", float),
        "silent_restart": ("silent_restart_s", _opt_float),
        "backoff_initial": ("backoff_initial_s", float),
        "backoff_max": ("backoff_max_s", float),
    },
    "scripted": {
        "speed": ("speed", float),
        "rate": ("rate_hz", float),
        "loop": ("loop", _bool),
        "left": ("left", _bool),
    },
    "keyboard": {
        "step": ("step_m", float),
        "step_deg": ("step_rad", lambda s: math.radians(float(s))),
        "press": ("press_s", float),
        "left": ("left", _bool),
    },
    "replay": {
        "speed": ("speed", float),
    },
    "webxr": {
        "bind": ("bind", str),
        "port": ("port", int),
        "https": ("https", _bool),
        "token": ("token", str),
        "cert_dir": ("cert_dir", str),
        "stale_timeout": ("stale_timeout_s", float),
        "late_after": ("late_after_s", float),
        "emulate": ("emulate", str),
    },
}
_FAKE_CLI_OPTIONS = (
    "rate",
    "speed",
    "duration",
    "drop_after",
    "pause_after",
    "noise",
    "bad_every",
    "side_order",
    "seed",
    "left",
)


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """Splits a spec into (kind, arg or None, raw options).

    Example: ``"scripted:pick_place@speed=0.5"`` -> ``("scripted", "pick_place", {"speed": "0.5"})``.
    An ``@`` only starts the options when everything after it is ``key=value`` pairs, so file
    paths may contain ``@``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"expected a VR source spec such as 'quest' or 'scripted:circle'; got {spec!r}")
    spec = spec.strip()
    head, opts_text = spec, ""
    for m in re.finditer("@", spec):
        if _OPTS_RE.match(spec[m.end():]):
            head, opts_text = spec[: m.start()], spec[m.end():]
            break
    kind, colon, arg = head.partition(":")
    options: dict[str, str] = {}
    for item in re.split("[,@]", opts_text) if opts_text else []:
        key, _, value = item.partition("=")
        if key in options:
            raise ConfigError(f"VR source option {key!r} given twice in {spec!r}")
        options[key] = value
    return kind.strip(), (arg if colon else None), options


def _convert(kind: str, options: Mapping[str, str], spec: str) -> dict[str, Any]:
    table = OPTIONS[kind]
    out: dict[str, Any] = {}
    for key, text in options.items():
        if key not in table:
            raise ConfigError(
                f"unknown option {key!r} for VR source {kind!r} in {spec!r}; expected one of {', '.join(table)}"
            )
        kw, conv = table[key]
        try:
            out[kw] = conv(text)
        except ValueError as exc:
            raise ConfigError(f"bad value {text!r} for option {key!r} of VR source {kind!r}: {exc}") from None
    return out


def fake_headset_command(trajectory: str = "circle", python: str = sys.executable, **cli: Any) -> list[str]:
    """argv prefix that runs the fake headset as an adb stand-in (options as in its CLI)."""
    argv = [python, "-m", "oculus_server.vr.fake_headset", "--trajectory", trajectory]
    for key, value in cli.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def make_source(
    spec: str,
    *,
    left: bool = False,
    ip: str | None = None,
    replay_loader: Callable[[str], Iterable[Any]] | None = None,
    **kw: Any,
) -> VRSource:
    """Builds the VR source a spec names (see the module docstring).

    Args:
        spec: e.g. "quest", "quest@ip=10.0.0.2", "scripted:pick_place@speed=0.5", "keyboard",
            "fake_headset:circle@drop_after=3", "replay:session.mcap".
        left: the operator uses the left controller: simulated sources (scripted, keyboard,
            fake_headset) move it instead of the right one. Ignored by quest, webxr and replay,
            which carry both controllers. A spec option ``left=1`` also selects it.
        ip: headset IP for network mode (quest, fake_headset); ignored by the other kinds.
            None keeps the spec's ``ip`` option, if any.
        replay_loader: for "replay:FILE": path -> iterable of (t_seconds, poses, buttons).
        **kw: constructor keywords (e.g. clock=..., fd=..., adb=...); they override spec options.

    Raises:
        ConfigError: unknown kind, option or trajectory, or a bad value.
    """
    from oculus_server.vr.keyboard import KeyboardSource
    from oculus_server.vr.quest import QuestReader
    from oculus_server.vr.replay import ReplaySource
    from oculus_server.vr.scripted import ScriptedSource
    from oculus_server.vr.webxr import WebXRSource

    kind, arg, raw = parse_spec(spec)
    if kind not in OPTIONS:
        raise ConfigError(f"unknown VR source {kind!r} in {spec!r}; expected one of {', '.join(OPTIONS)}")
    opts = {**_convert(kind, raw, spec), **kw}
    if kind in ("quest", "fake_headset") and ip is not None:
        opts["ip"] = ip
    if kind in ("scripted", "keyboard", "fake_headset"):
        opts["left"] = bool(left or opts.get("left", False))
    if kind == "quest":
        if arg:
            opts.setdefault("serial", arg)
        return _build(QuestReader, spec, **opts)
    if kind == "fake_headset":
        cli = {k: opts.pop(k) for k in _FAKE_CLI_OPTIONS if k in opts}
        opts.setdefault("adb", fake_headset_command(arg or "circle", **cli))
        opts.setdefault("name", f"fake_headset:{arg or 'circle'}")
        return _build(QuestReader, spec, **opts)
    if kind == "scripted":
        if not arg:
            raise ConfigError(f"expected 'scripted:NAME' (e.g. scripted:circle); got {spec!r}")
        return _build(ScriptedSource, spec, arg, **opts)
    if kind == "webxr":
        if arg:
            raise ConfigError(f"'webxr' takes no argument (options go after '@', e.g. webxr@port=8443); got {spec!r}")
        return _build(WebXRSource, spec, **opts)
    if kind == "keyboard":
        if arg:
            raise ConfigError(f"'keyboard' takes no argument; got {spec!r}")
        return _build(KeyboardSource, spec, **opts)
    if not arg:
        raise ConfigError(f"expected 'replay:FILE'; got {spec!r}")
    if replay_loader is None:
        from oculus_server.recording.vr_frames import load_vr_frames

        if not Path(arg).is_file():
            raise ConfigError(f"{spec!r}: expected an MCAP recording, but {arg!r} is not a file")
        replay_loader = load_vr_frames
    opts.setdefault("name", f"replay:{arg}")
    return _build(ReplaySource, spec, replay_loader(arg), **opts)


def _build(cls: type[VRSource], spec: str, *args: Any, **kwargs: Any) -> VRSource:
    """Calls `cls(*args, **kwargs)` after checking the keywords against its signature."""
    try:
        inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for VR source {spec!r} ({cls.__name__}): {exc}") from None
    return cls(*args, **kwargs)
