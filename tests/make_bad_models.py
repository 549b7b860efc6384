#!/usr/bin/env python3
"""Writes the tiny ONNX models that the error tests load (committed in tests/data).

  bad_output.onnx    image input [1,3,32,32], output [1,10]: fits no YOLO layout
  dynamic_input.onnx image input [1,3,H,W] with dynamic H and W
  not_a_model.onnx   text, not ONNX at all
  dynamic_batch.onnx a YOLOX-layout toy with a dynamic batch: input [N,3,32,32], output
                     [N,21,7] (21 = 4x4 + 2x2 + 1x1 grid cells, 2 classes), each image's
                     output a fixed function of that image alone

Needs `pip install onnx`. Run: python3 tests/make_bad_models.py
"""
import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name))


def main():
    os.makedirs(HERE, exist_ok=True)
    # ReduceMean over H and W, then flatten and pad to 10 values: [1,3,32,32] -> [1,10].
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])
    pads = helper.make_tensor("pads", TensorProto.INT64, [4], [0, 0, 0, 7])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("Pad", ["m", "pads"], ["output"]),
    ]
    save(helper.make_graph(nodes, "bad_output", [x], [y], [pads]), "bad_output.onnx")

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, "h", "w"])
    nodes = [helper.make_node("Identity", ["images"], ["output"])]
    save(helper.make_graph(nodes, "dynamic_input", [x], [y]), "dynamic_input.onnx")

    # Resize to 7x7 (147 = 21 x 7 values per image), reshape, squash into 0..1.
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 32])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 21, 7])
    inits = [
        helper.make_tensor("roi", TensorProto.FLOAT, [0], []),
        helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 7 / 32, 7 / 32]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 21, 7]),
        helper.make_tensor("k", TensorProto.FLOAT, [], [0.02]),
        helper.make_tensor("b", TensorProto.FLOAT, [], [-2.0]),
    ]
    nodes = [
        helper.make_node("Resize", ["images", "roi", "scales"], ["small"], mode="nearest"),
        helper.make_node("Reshape", ["small", "shape"], ["rows"]),
        helper.make_node("Mul", ["rows", "k"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["shifted"]),
        helper.make_node("Sigmoid", ["shifted"], ["output"]),
    ]
    save(helper.make_graph(nodes, "dynamic_batch", [x], [y], inits), "dynamic_batch.onnx")

    with open(os.path.join(HERE, "not_a_model.onnx"), "w") as f:
        f.write("this is not an ONNX model\n")


if __name__ == "__main__":
    main()
