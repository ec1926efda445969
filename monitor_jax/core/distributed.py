"""Start-up of JAX's multi-controller runtime: decide whether this launch is one process of several and, if so,
call `jax.distributed.initialize` once, before any other JAX use; plus what the rest of the package asks of the
processes (`is_main`, `allgather_json`, `agree`, `barrier`).

Every host runs the same command; nothing here launches processes. A launch is multi-process when, in order:
1. `--distributed=off` (or MONITOR_JAX_DISTRIBUTED=off): never; `on`: always, with JAX's auto-detection filling
   in whatever the flags below leave out (TPU pod slices, Slurm, Open MPI);
2. (`auto`, the default) any of `--coordinator_address`, `--num_processes`, `--process_id` is given, as a flag or
   as MONITOR_JAX_COORDINATOR_ADDRESS / MONITOR_JAX_NUM_PROCESSES / MONITOR_JAX_PROCESS_ID (flags win);
3. (`auto`) a cluster JAX auto-detects is present: a Cloud TPU VM (a TPU device node: JAX reads the slice's
   hosts from the TPU metadata, and a single-host TPU VM comes up as one process), a GKE TPU pod
   (TPU_WORKER_HOSTNAMES / TPU_PROCESS_ADDRESSES naming several hosts), a Slurm step with SLURM_NTASKS > 1
   (under `srun`), or Open MPI with OMPI_COMM_WORLD_SIZE > 1 (under `mpirun`).
Otherwise the launch is one process and `initialize` does nothing. On CPU, cross-process collectives need an
implementation: `cpu_collectives` ("gloo" by default; "mpi" needs an MPI library) is set before initializing.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from typing import Any, Mapping

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
CPU_COLLECTIVES = ("gloo", "mpi")
ENV_PREFIX = "MONITOR_JAX_"


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${name}={value!r} is not an integer") from None


def _on_tpu_vm() -> bool:
    """Whether this machine has TPU chips (JAX's own probe of the PCI bus; /dev/accel* where that is missing)."""
    try:
        from jax._src import hardware_utils

        return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0
    except Exception:  # noqa: BLE001 - a private helper: fall back to the device nodes of TPU v2-v4
        return bool(glob.glob("/dev/accel[0-9]*"))


def detect_cluster(env: Mapping[str, str] | None = None, *, tpu_vm: bool | None = None) -> str | None:
    """The multi-process cluster JAX can auto-detect here ("gke-tpu", "tpu-vm", "slurm", "openmpi"), or None.
    `env` defaults to os.environ and `tpu_vm` to probing this machine for TPU chips."""
    env = os.environ if env is None else env
    hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES")
    if hosts and len(hosts.split(",")) > 1:
        return "gke-tpu"
    if _on_tpu_vm() if tpu_vm is None else tpu_vm:
        return "tpu-vm"
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(k in env for k in slurm) and (_env_int(env, "SLURM_NTASKS") or 1) > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and (_env_int(env, "OMPI_COMM_WORLD_SIZE") or 1) > 1:
        return "openmpi"
    return None


def resolve(coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None, mode: str | None = None,
            env: Mapping[str, str] | None = None, tpu_vm: bool | None = None) -> dict[str, Any] | None:
    """The `jax.distributed.initialize` arguments this launch asks for (None-valued ones are auto-detected by
    JAX), or None for a single-process launch. Flags first, then MONITOR_JAX_* variables, then a detected
    cluster (see the module docstring)."""
    env = os.environ if env is None else env
    mode = (mode or env.get(ENV_PREFIX + "DISTRIBUTED") or "auto").lower()
    if mode not in MODES:
        raise ValueError(f"--distributed must be one of {MODES}, got {mode!r}")
    if mode == "off":
        return None
    args = {
        "coordinator_address": coordinator_address or env.get(ENV_PREFIX + "COORDINATOR_ADDRESS") or None,
        "num_processes": num_processes if num_processes is not None else _env_int(env, ENV_PREFIX + "NUM_PROCESSES"),
        "process_id": process_id if process_id is not None else _env_int(env, ENV_PREFIX + "PROCESS_ID"),
    }
    n, i = args["num_processes"], args["process_id"]
    if n is not None and n < 1:
        raise ValueError(f"--num_processes must be >= 1, got {n}")
    if i is not None and (i < 0 or (n is not None and i >= n)):
        raise ValueError(f"--process_id={i} is not in [0, --num_processes={n})")
    explicit = any(v is not None for v in args.values())
    cluster = detect_cluster(env, tpu_vm=tpu_vm)
    if mode == "auto" and not explicit and cluster is None:
        return None
    if mode == "auto" and n == 1 and cluster is None:
        return None  # `--num_processes=1`: one process, said explicitly
    if cluster is None and None in args.values():
        missing = [f"--{k}" for k, v in args.items() if v is None]
        raise ValueError(f"multi-process launch: {', '.join(missing)} missing, and no TPU, Slurm or Open MPI "
                         "environment to detect them from; give all of --coordinator_address=HOST:PORT "
                         "--num_processes=N --process_id=I (or --distributed=off)")
    return args


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, mode: str | None = None, cpu_collectives: str = "gloo") -> bool:
    """Starts JAX's multi-controller runtime when this launch asks for it (`resolve`); returns whether this is a
    multi-process run. Call once at start-up, before any JAX computation; a second call does nothing."""
    args = resolve(coordinator_address, num_processes, process_id, mode)
    if args is None:
        return False
    import jax

    if jax.distributed.is_initialized():
        return True
    if cpu_collectives not in CPU_COLLECTIVES:
        raise ValueError(f"--cpu_collectives must be one of {CPU_COLLECTIVES}, got {cpu_collectives!r}")
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(**{k: v for k, v in args.items() if v is not None})
    log.info("JAX process %d of %d (%d local devices, %d in all)", jax.process_index(), jax.process_count(),
             jax.local_device_count(), jax.device_count())
    return True


def is_main() -> bool:
    """Whether this is process 0, the one that prints, logs and writes shared files (True on one process)."""
    import jax

    return jax.process_index() == 0


def allgather_json(obj: Any) -> list[Any]:
    """Every process's JSON-serializable `obj`, in process order (two small collectives; every process calls)."""
    import jax

    if jax.process_count() == 1:
        return [obj]
    import numpy as np
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(obj).encode("utf-8"), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([data.size], np.int64))).reshape(-1)
    buf = np.zeros(int(sizes.max()), np.uint8)
    buf[: data.size] = data
    rows = np.asarray(multihost_utils.process_allgather(buf))
    return [json.loads(rows[p, : int(sizes[p])].tobytes().decode("utf-8")) for p in range(len(sizes))]


def agree(obj: Any) -> Any:
    """Process 0's JSON-serializable `obj`, on every process (every process calls; `obj` itself on one process):
    decisions that read files (is a run finished? are its scores kept?) are taken once, for every host alike."""
    import jax

    if jax.process_count() == 1:
        return obj
    return allgather_json(obj if is_main() else None)[0]


def barrier(name: str) -> None:
    """Waits until every process gets here (nothing on one process): e.g. after process 0 writes a file the
    others read next."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
