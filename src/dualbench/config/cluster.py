"""What a measuring job asks a cluster scheduler for, from the config's slots: the
accelerators as Snakemake resources that the Slurm executor turns into `--gres` (NPUs) or
`--gpus` (CUDA), so that a profile never needs hand-edited device counts.

The count is the highest device index the slots name, plus one: an allocation of n devices
shows the job the indices 0…n−1 (Slurm renumbers CUDA devices inside a job), so a job whose
slots name `npu:1` needs two. `slots: auto` needs one device per model, as auto places them.
Resources are not a rerun trigger: changing them reruns nothing.
"""

from __future__ import annotations

from dualbench.config.vocabulary import model_names

ACCELERATORS = ("npu", "cuda")


def device_request(cfg: dict) -> tuple[str, int] | None:
    """(kind, count) of the accelerators a measuring job needs; None on the CPU or where the
    kind is unknown (``device: auto`` on a login node, where nothing is detected)."""
    if cfg["slots"] == "auto":
        kind = cfg["resolved"]["device"]
        return (kind, len(model_names(cfg))) if kind in ACCELERATORS else None
    devices = [entry["device"] for entry in cfg["slots"].values()]
    kind = devices[0].split(":")[0]
    if kind not in ACCELERATORS:
        return None
    return kind, max(int(device.split(":")[1]) for device in devices) + 1


def scheduler_resources(cfg: dict) -> dict[str, str | int]:
    """The measuring rules' device resources: {"gres": "<npu_gres>:n"} for NPUs (the GRES
    name is the cluster's own: ``cluster.npu_gres``), {"gpu": n} for CUDA, {} otherwise."""
    request = device_request(cfg)
    if request is None:
        return {}
    kind, count = request
    if kind == "npu":
        return {"gres": f"{cfg['cluster']['npu_gres']}:{count}"}
    return {"gpu": count}
