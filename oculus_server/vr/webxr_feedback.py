"""What the WebXR page shows about the daemon: whether the arm follows and whether it records."""

from __future__ import annotations

from typing import Any, Protocol

from robot_formats.recording.records import RobotCommand


class _Safety(Protocol):
    @property
    def held(self) -> str: ...

    @property
    def sending(self) -> bool: ...


class _Episode(Protocol):
    @property
    def active(self) -> bool: ...

    @property
    def success(self) -> bool: ...

    @property
    def messages(self) -> int: ...


class CommandSource(Protocol):
    """The newest command (`oculus_server.state.CommandChannel`)."""

    def command(self) -> RobotCommand | None: ...


class SafetySource(Protocol):
    """The command path's status (`oculus_server.state.SafetyChannel`)."""

    def status(self) -> _Safety: ...


class EpisodeSource(Protocol):
    """The recording's status (`oculus_server.state.EpisodeChannel`)."""

    def status(self) -> _Episode: ...


def operator_feedback(commands: CommandSource, safety_channel: SafetySource, episodes: EpisodeSource) -> dict[str, Any]:
    """The daemon's view for the headset, as the dashboard shows it.

    Returns:
        ``engaged``: the last command moves the arm (deadman held, link fine, gate lets it out);
        ``held``: why the arm holds ("" while it follows); ``recording``: an episode is open;
        ``success``: it is marked successful (B); ``messages``: messages written to it so far.
    """
    cmd = commands.command()
    safety = safety_channel.status()
    episode = episodes.status()
    engaged = bool(cmd is not None and cmd.engaged and safety.sending)
    return {
        "engaged": engaged,
        "held": "" if engaged else (safety.held or (cmd.source if cmd is not None else "starting")),
        "recording": bool(episode.active),
        "success": bool(episode.success),
        "messages": int(episode.messages),
    }


__all__ = ["CommandSource", "EpisodeSource", "SafetySource", "operator_feedback"]
