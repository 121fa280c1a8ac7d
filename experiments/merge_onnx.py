"""Merge two exported eyescreen models into one ONNX graph that averages their logits.

Usage: .venv/bin/python experiments/merge_onnx.py FIRST_DIR SECOND_DIR OUT_DIR

Both folders need model.onnx and model_card.json with the same input and classes. OUT_DIR gets
the merged model.onnx and a copy of the first member's card, so `eyescreen camera-shift` and
`eyescreen evaluate` can load the pair. That card's temperature and referral threshold belong
to the first member, so only the predicted class, not the status, is meaningful. The script
checks on random input that the merged graph returns the mean of the two members' logits.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, compose, helper


def merge(first: onnx.ModelProto, second: onnx.ModelProto) -> onnx.ModelProto:
    """Return a graph that feeds one input to both members and averages their outputs."""
    members = [compose.add_prefix(first, "member0/"), compose.add_prefix(second, "member1/")]
    image, logits = first.graph.input[0], first.graph.output[0]

    nodes = [helper.make_node("Identity", [image.name], [member.graph.input[0].name]) for member in members]
    for member in members:
        nodes.extend(member.graph.node)
    nodes.append(helper.make_node("Add", [member.graph.output[0].name for member in members], ["logit_sum"]))
    nodes.append(helper.make_node("Mul", ["logit_sum", "half"], [logits.name]))

    initializers = [*members[0].graph.initializer, *members[1].graph.initializer]
    initializers.append(helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]))
    graph = helper.make_graph(nodes, "pair", [image], [logits], initializer=initializers)
    model = helper.make_model(graph, opset_imports=first.opset_import)
    model.ir_version = first.ir_version
    onnx.checker.check_model(model)
    return model


def run(path: Path, batch: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("out", type=Path)
    arguments = parser.parse_args()

    first, second = onnx.load(arguments.first / "model.onnx"), onnx.load(arguments.second / "model.onnx")
    if first.graph.input[0].type != second.graph.input[0].type:
        raise SystemExit(f"the members take different inputs: {first.graph.input[0].type} and {second.graph.input[0].type}")
    classes = [json.loads((folder / "model_card.json").read_text())["classes"] for folder in (arguments.first, arguments.second)]
    if classes[0] != classes[1]:
        raise SystemExit(f"the members predict different classes: {classes[0]} and {classes[1]}")

    arguments.out.mkdir(parents=True, exist_ok=True)
    onnx.save(merge(first, second), arguments.out / "model.onnx")
    shutil.copyfile(arguments.first / "model_card.json", arguments.out / "model_card.json")

    size = first.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    batch = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    expected = (run(arguments.first / "model.onnx", batch) + run(arguments.second / "model.onnx", batch)) / 2
    difference = float(np.abs(run(arguments.out / "model.onnx", batch) - expected).max())
    print(f"wrote {arguments.out / 'model.onnx'}. Largest difference from the mean of the members: {difference:.2e}")


if __name__ == "__main__":
    main()
