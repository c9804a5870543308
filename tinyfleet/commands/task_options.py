"""CLI text about tasks, from the task specs: choices, defaults and task-specific option help."""

from __future__ import annotations

from device_sim.tasks import spec_for, task_names


def task_option_help(flag: str, detail: str = "") -> str:
    """``"<task>: <help>"`` for an option only some tasks read (``TaskSpec.option_help``)."""
    parts = [
        f"{name}: {spec_for(name).option_help[flag]}{detail}"
        for name in task_names()
        if flag in spec_for(name).option_help
    ]
    if not parts:
        raise KeyError(f"no task spec documents the option {flag}")
    return "; ".join(parts)


def tasks_with(flag: str) -> list[str]:
    """Tasks whose spec sets the boolean/callable field ``flag`` (e.g. ``live_microphone``)."""
    return [name for name in task_names() if getattr(spec_for(name), flag)]


def tasks_line() -> str:
    """``kws (keyword spotting), vibration (anomaly), …`` for ``tinyfleet --help``."""
    return ", ".join(f"{name} ({spec_for(name).title})" for name in task_names())
