#!/opt/kiln-py/bin/python
"""Triton's own clients (tritonclient.http and tritonclient.grpc, PyPI) against a running
kiln server.

Usage: triton_client_check.py URL MODEL INPUT.npy EXPECTED.npy [GRPC_URL]

Checks health, server and model metadata, then infers with JSON tensors, with binary
tensor data, and asynchronously, and requires every output to equal EXPECTED.npy (what
kiln's executor computed in-process) bit for bit; with GRPC_URL the same over gRPC.
Prints one line per check and exits nonzero at the first failure.
"""

import queue
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def main():
    url, model, input_path, expected_path = sys.argv[1:5]
    data = np.load(input_path)
    expected = np.load(expected_path)
    client = httpclient.InferenceServerClient(url=url, concurrency=4)

    assert client.is_server_live(), "server not live"
    assert client.is_server_ready(), "server not ready"
    assert client.is_model_ready(model), "model not ready"
    server = client.get_server_metadata()
    assert server["name"] == "kiln", server
    metadata = client.get_model_metadata(model)
    assert metadata["inputs"][0]["datatype"] == "FP32", metadata
    assert [int(d) for d in metadata["inputs"][0]["shape"]] == list(data.shape), metadata
    input_name = metadata["inputs"][0]["name"]
    output_name = metadata["outputs"][0]["name"]
    print("health and metadata: ok")

    for binary in (False, True):
        tensor = httpclient.InferInput(input_name, list(data.shape), "FP32")
        tensor.set_data_from_numpy(data, binary_data=binary)
        requested = httpclient.InferRequestedOutput(output_name, binary_data=binary)
        result = client.infer(model, [tensor], outputs=[requested], request_id="check-%d" % binary)
        output = result.as_numpy(output_name)
        assert output.dtype == np.float32 and output.shape == expected.shape, (output.dtype, output.shape)
        assert np.array_equal(output.view(np.uint32), expected.view(np.uint32)), "outputs differ from kiln's"
        assert result.get_response()["id"] == "check-%d" % binary
        print("infer, %s: ok" % ("binary data" if binary else "JSON"))

    tensor = httpclient.InferInput(input_name, list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    pending = [client.async_infer(model, [tensor]) for _ in range(8)]
    for request in pending:
        output = request.get_result().as_numpy(output_name)
        assert np.array_equal(output.view(np.uint32), expected.view(np.uint32)), "async outputs differ"
    print("async infer x8: ok")

    try:
        client.get_model_metadata("no_such_model")
        raise AssertionError("metadata of an unknown model did not fail")
    except InferenceServerException as e:
        assert "no_such_model" in str(e), str(e)
    print("unknown model refused: ok")
    client.close()
    if len(sys.argv) > 5:
        check_grpc(sys.argv[5], model, data, expected)


def check_grpc(url, model, data, expected):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url)
    assert client.is_server_live(), "gRPC: server not live"
    assert client.is_server_ready(), "gRPC: server not ready"
    assert client.is_model_ready(model), "gRPC: model not ready"
    assert client.get_server_metadata().name == "kiln"
    metadata = client.get_model_metadata(model)
    assert metadata.inputs[0].datatype == "FP32", metadata
    assert list(metadata.inputs[0].shape) == list(data.shape), metadata
    input_name, output_name = metadata.inputs[0].name, metadata.outputs[0].name
    print("gRPC health and metadata: ok")

    tensor = grpcclient.InferInput(input_name, list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    result = client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput(output_name)], request_id="g")
    output = result.as_numpy(output_name)
    assert output.dtype == np.float32 and output.shape == expected.shape, (output.dtype, output.shape)
    assert np.array_equal(output.view(np.uint32), expected.view(np.uint32)), "gRPC outputs differ from kiln's"
    assert result.get_response().id == "g"
    print("gRPC infer: ok")

    answers = queue.Queue()
    for _ in range(8):
        client.async_infer(model, [tensor], callback=lambda result, error: answers.put((result, error)))
    for _ in range(8):
        result, error = answers.get(timeout=60)
        assert error is None, error
        assert np.array_equal(result.as_numpy(output_name).view(np.uint32), expected.view(np.uint32))
    print("gRPC async infer x8: ok")

    try:
        client.get_model_metadata("no_such_model")
        raise AssertionError("gRPC metadata of an unknown model did not fail")
    except InferenceServerException as e:
        assert "no_such_model" in str(e) and "NOT_FOUND" in str(e), str(e)
    print("gRPC unknown model refused: ok")
    client.close()


if __name__ == "__main__":
    main()
