"""The machine a study ran on, in a few facts a reader needs to compare timings and precision."""

from __future__ import annotations

import os
import platform
from typing import Any


def machine_facts() -> dict[str, Any]:
    """CPU (model, vector capability, native bf16), cores, GPU, library versions."""
    import torch
    import transformers

    from entrodrop.precision import cpu_facts

    facts = cpu_facts()
    return {
        "cpu": facts.model,
        "cpu_capability": facts.capability,
        "native_bf16": facts.avx512_bf16 or facts.amx,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
