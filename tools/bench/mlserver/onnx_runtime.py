"""A minimal MLServer runtime serving an ONNX model through ONNX Runtime (CPU provider,
all graph optimizations, one intra-op thread per request as kiln serve runs them): the
anchor bench_serve.py compares kiln serve against, over the same protocol.

model-settings.json: {"name": ..., "implementation": "onnx_runtime.OnnxRuntimeModel",
                      "parameters": {"uri": "/path/model.onnx"}}
"""

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(self.settings.parameters.uri, options,
                                             providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {tensor.name: NumpyCodec.decode_input(tensor) for tensor in payload.inputs}
        results = self._session.run(self._outputs, feeds)
        return InferenceResponse(model_name=self.name, id=payload.id,
                                 outputs=[NumpyCodec.encode_output(name, value)
                                          for name, value in zip(self._outputs, results)])
