"""Lets torchvision's pure-Python half import beside the CPU build of torch (the LeRobot env).

The LeRobot environment (`tools/make_lerobot_env.sh`) pairs the CPU build of torch 2.13 with
PyPI's torchvision 0.28, whose compiled ops (``torchvision/_C.so``) link against CUDA torch and
cannot load there. torchvision guards every op registration on its ops being loaded except the
fake kernels of ``torchvision::nms`` and ``torchvision::qnms``, so ``import torchvision`` fails.
`ensure_torchvision_importable` defines those two op schemas (no kernel: calling them raises
torch's "no kernel" error) when the compiled ops are missing, and does nothing when they load.
LeRobot's ACT and Diffusion use only torchvision's pure-Python parts (ResNet, FrozenBatchNorm2d,
IntermediateLayerGetter, transforms), which run unchanged.

`install_import_hook` runs it on the first ``import torchvision`` of a process; the env script
installs that hook through a ``.pth`` file, so ``lerobot-train`` from the env works as well.
No import of torch happens until torchvision is imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_done = False


def _compiled_ops_load() -> bool:
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        for lib in sorted(Path(folder).glob("_C*.so")):
            try:
                torch.ops.load_library(str(lib))
                return True
            except (OSError, RuntimeError):
                return False
    return False


def ensure_torchvision_importable() -> None:
    """Defines the op schemas torchvision's import needs when its compiled ops cannot load."""
    global _done
    if _done:
        return
    _done = True
    # expected here, and said once per process otherwise: the compiled image decoders are missing
    # too (LeRobot decodes video with pyav), and torchvision's video API is marked deprecated
    warnings.filterwarnings("ignore", message="Failed to load image Python extension")
    warnings.filterwarnings("ignore", message="The video decoding and encoding capabilities of torchvision")
    if _compiled_ops_load():
        return
    import torch

    lib = torch.library.Library("torchvision", "FRAGMENT")  # noqa: TOR901 -- kept alive below
    for name, schema in _SCHEMAS.items():
        try:
            lib.define(name + schema)
        except RuntimeError:  # already defined (another library did it)
            pass
    _LIBS.append(lib)


_LIBS: list[object] = []  # the Library objects must outlive the module import


class _TorchvisionHook(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torchvision":
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
            ensure_torchvision_importable()
        return None  # the normal finders import it


def install_import_hook() -> None:
    """Runs `ensure_torchvision_importable` just before the first ``import torchvision``."""
    if "torchvision" in sys.modules or any(isinstance(f, _TorchvisionHook) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TorchvisionHook())
