"""The image tower on OpenVINO: the CPU runtime that made indexing fastest on the measurements here.

Why OpenVINO (``bench/README.md``, indexing): on the 2-core Xeon box, ViT-B-16 / ViT-B-32 frames per second at
batch 32 were torch float 5.2 / 21.8, torch int8 (dynamic, ``+int8``) 7.9 / 35.6, ONNX Runtime int8 (dynamic)
11.3 / 40.4, **OpenVINO 13.6 / 55.7** -- OpenVINO runs the matrix products in bfloat16 on CPUs that have it
(AMX or AVX512-BF16; its default precision there), with features within cosine 0.99995 of the float tower
(int8: 0.9998), and in float32 elsewhere. The open_clip model is converted in memory (``openvino.convert_model``
traces it; ~5 s for ViT-B-16) when the encoder loads; the text tower stays in torch (questions are few).

An optional dependency (``pip install -e ".[openvino]"``); asking for it without it installed says so.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import torch

from models.errors import EncoderUnavailable

logger = logging.getLogger(__name__)


class OpenVinoImageTower(torch.nn.Module):
    """Stands in for ``model.visual``: the same call (NCHW float batch -> embeddings), compiled by OpenVINO."""

    def __init__(self, visual: torch.nn.Module, image_size: int, threads: int) -> None:
        super().__init__()
        try:
            import openvino as ov
        except ImportError:
            raise EncoderUnavailable(
                'the openvino image tower needs OpenVINO: pip install -e ".[openvino]" (or use +int8)'
            ) from None
        self.preprocess_cfg = visual.preprocess_cfg
        example = torch.zeros(1, 3, image_size, image_size)
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # the fused attention op has no conversion; its parts do
        try:
            converted = ov.convert_model(visual.float().eval(), example_input=example)
        except Exception as exc:  # noqa: BLE001 - a conversion failure of any kind: one message
            raise EncoderUnavailable(f"OpenVINO could not convert the image tower ({exc})") from None
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        self._compiled: Any = ov.Core().compile_model(converted, "CPU", {"INFERENCE_NUM_THREADS": max(1, threads)})
        self.precision = str(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one request, and the encoder is shared by threads
        logger.info("image tower compiled by OpenVINO (%s, %d threads)", self.precision, threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(x.detach().float().cpu().numpy())
        with self._lock:
            out = np.array(self._request.infer({0: batch})[0], dtype=np.float32)
        return torch.from_numpy(out)


def openvino_image_tower(model: Any, device: torch.device, image_size: int) -> Any:
    """Replace ``model.visual`` by its OpenVINO build (CPU only); returns the model."""
    if device.type != "cpu":
        raise EncoderUnavailable("the openvino image tower runs on the CPU only; on a GPU use the float16 encoder")
    model.visual = OpenVinoImageTower(model.visual, image_size, torch.get_num_threads())
    return model
