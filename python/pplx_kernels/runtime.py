"""CPU dispatch and thread settings of the compiled core."""

from __future__ import annotations

import numpy as np

from . import _core, tune

_FAMILIES_NOTE = (
    "A level runs only where the CPU has it and the OS saves its registers (CPUID + XCR0). "
    "PPLX_KERNELS_ISA caps the level at import; set_isa() changes it in-process."
)


def available_isas() -> list[str]:
    """Levels this machine can run, lowest first (always includes 'scalar')."""
    return list(_core.supported_isas())


def get_isa() -> str:
    """The level the kernel table was built at."""
    return _core.get_isa()


def set_isa(name: str) -> None:
    """Rebuilds the kernel table at `name` (for tests, or to avoid a bad path)."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a level name (str), got {type(name).__name__}")
    if name not in ("scalar", "avx2", "avx512", "neon"):
        raise ValueError(f"name: expected one of scalar, avx2, avx512, neon, got {name!r}")
    if name not in available_isas():
        raise ValueError(f"name: level {name!r} is not supported on this machine; available: {available_isas()}")
    _core.set_isa(name)
    tune.invalidate()  # the new level's tuned knobs apply at the next search


def get_num_threads() -> int:
    """Threads a kernel uses when called with threads=None (at most
    cpu_info()["max_threads"], the usable cores)."""
    return _core.get_num_threads()


def set_num_threads(n: int | None) -> None:
    """Sets the process-wide thread count; None restores the default (usable
    cores, or PPLX_KERNELS_NUM_THREADS)."""
    if n is None:
        _core.set_num_threads(0)
        return
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive int or None, got {n!r}")
    _core.set_num_threads(int(n))


def cpu_info() -> dict:
    """What was detected, which level is active and which variant each
    kernel family uses."""
    return {
        "isa": get_isa(),
        "available": available_isas(),
        "compiled": list(_core.__compiled_isas__),
        "features": dict(_core.cpu_features()),
        "kernels": dict(_core.kernel_variants()),
        "threads": get_num_threads(),
        "max_threads": _core.max_threads(),
        # Speed-only knob values of the search kernels and their source:
        # cache, calibration or defaults (pplx_kernels.tune).
        "tuning": tune.tuning_info(),
        "note": _FAMILIES_NOTE,
    }
