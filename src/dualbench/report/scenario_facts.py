"""A scenario's settings in words, from the config (config.report_params' "settings"): what
its requests are and how they arrive, then each model whose slot overrides them. The report
prints these facts above a scenario, and its free-text description only as a note beside
them: a description is written once and goes stale when a setting changes ("4096-token
prompts" above runs of 1,024), the facts cannot."""

from __future__ import annotations

from typing import Any


def _arrival(arrival: dict[str, Any] | None) -> str:
    if not arrival:
        return "closed loop (each model sends its next request when one returns)"
    process = arrival.get("process", "poisson")
    shape = process.capitalize() if process == "poisson" else "gamma"
    if process == "gamma":
        shape += f" (burstiness {arrival.get('burstiness', 1):g})"
    return f"open loop: {shape} arrivals at {arrival['rate_rps']:g} req/s"


def _requests(settings: dict[str, Any]) -> list[str]:
    """The settings present in ``settings``, each in words, in a fixed order."""
    parts = []
    if "prompt_tokens" in settings:
        parts.append(f"prompt {settings['prompt_tokens']:,} tokens")
    if "new_tokens" in settings:
        parts.append(f"{settings['new_tokens']:,} new tokens")
    if "batch_size" in settings:
        parts.append(f"batch {settings['batch_size']}")
    if "arrival" in settings:
        parts.append(_arrival(settings["arrival"]))
    if "min_requests" in settings:
        parts.append(f"at least {settings['min_requests']} requests per model")
    return parts


def describe(settings: dict[str, Any] | None) -> dict[str, Any]:
    """{"common": the scenario's settings in words, "slots": [(model, its overrides in
    words)], "window": the measuring window}; empty where the config gave no settings."""
    if not settings:
        return {"common": "", "slots": [], "window": ""}
    window = f"{settings['trial_s']:g} s trials" if "trial_s" in settings else ""
    slots = [
        (slot, ", ".join(_requests(over)))
        for slot, over in sorted(settings.get("slots", {}).items())
        if _requests(over)
    ]
    return {"common": " · ".join(_requests(settings)), "slots": slots, "window": window}
