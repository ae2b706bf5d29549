#!/usr/bin/python3
"""Writes the ONNX models and .npy arrays test_onnx.sh runs (Debian's
python3: onnx, numpy).

    /usr/bin/python3 test/cli/onnx_cases.py OUTDIR

good.onnx        a small CNN: [1, 1, 28, 28] -> Conv, Relu, GlobalAveragePool,
                 Flatten, Gemm -> 10 logits (a grey 28x28 image network)
tensor.onnx      Relu over a [N, 5] input: a tensor model (color: none)
symbolic.onnx    good.onnx with a symbolic batch, height and width
two_inputs.onnx, cycle.onnx, missing.onnx, unsupported.onnx (a lone Erf),
huge.onnx (an initializer of 2^40 elements), deep.onnx (graphs nested in
attributes 200 deep), badshape.onnx (an input dimension of -3),
ext_*.onnx       external data at '../../etc/passwd', '/etc/passwd', 'link.bin'
                 and 'ldir/passwd' (the shell makes them symbolic links out of
                 the folder), 'w.bin' with an offset past its end, and the
                 good case 'w.bin' (a file of the right size beside the model)
x.npy            float32 [1, 28, 28]; xs.npy [3, 1, 28, 28]; t.npy [5, 1, 1]
bad_*.npy        the wrong shape, float64, Fortran order, a truncated file
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(3)
N = helper.make_node


def arr(name, *shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def save(name, nodes, inits, inputs=None, outputs=None, opset=13):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnx_cases")
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(m.SerializeToString())


good_nodes = [N("Conv", ["x", "conv1.weight", "conv1.bias"], ["a"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
              N("Relu", ["a"], ["r"], name="/relu/Relu"),
              N("GlobalAveragePool", ["r"], ["p"], name="/pool/GlobalAveragePool"),
              N("Flatten", ["p"], ["f"], name="/Flatten"),
              N("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="/fc/Gemm", transB=1)]
good_inits = [arr("conv1.weight", 4, 1, 3, 3), arr("conv1.bias", 4), arr("fc.weight", 10, 4), arr("fc.bias", 10)]
save("good", good_nodes, good_inits)

save("symbolic", good_nodes, good_inits,
     inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])])
save("tensor", [N("Relu", ["x"], ["y"])], [],
     inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])])
save("two_inputs", [N("Add", ["x", "z"], ["y"])], [],
     inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28]),
             helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 1, 28, 28])])
save("cycle", [N("Relu", ["b"], ["a"], name="first"), N("Relu", ["a"], ["b"], name="second"),
               N("Add", ["x", "b"], ["y"], name="last")], [])
save("missing", [N("Relu", ["x"], ["a"], name="r"), N("Add", ["a", "nowhere"], ["y"], name="add_missing")], [])
save("unsupported", [N("Erf", ["x"], ["y"], name="lonely_erf")], [])
huge = TensorProto(name="big", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20])
save("huge", [N("MatMul", ["x", "big"], ["y"])], [huge])
save("badshape", [N("Relu", ["x"], ["y"])], [],
     inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, -3, 4, 4])])

# graphs nested in attributes, deeper than the reader follows
inner = helper.make_graph([N("Relu", ["u"], ["v"])], "g0", [], [])
for k in range(200):
    inner = helper.make_graph([N("If", ["c"], ["v"], then_branch=inner)], "g%d" % (k + 1), [], [])
save("deep", [N("If", ["c"], ["y"], then_branch=inner)], [])


def external(name, location, offset, length, shape=(4, 1, 3, 3)):
    t = TensorProto(name="conv1.weight", data_type=TensorProto.FLOAT, dims=list(shape))
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    save(name, good_nodes, [t] + good_inits[1:])


external("ext_good", "w.bin", 0, 144)
external("ext_dotdot", "../../etc/passwd", 0, 144)
external("ext_abs", "/etc/passwd", 0, 144)
external("ext_link", "link.bin", 0, 144)
external("ext_linkdir", "ldir/passwd", 0, 144)
external("ext_range", "w.bin", 4096, 144)
with open(os.path.join(OUT, "w.bin"), "wb") as f:
    f.write(rng.standard_normal(36).astype(np.float32).tobytes())

np.save(os.path.join(OUT, "x.npy"), rng.standard_normal((1, 28, 28)).astype(np.float32))
np.save(os.path.join(OUT, "xs.npy"), rng.standard_normal((3, 1, 28, 28)).astype(np.float32))
np.save(os.path.join(OUT, "t.npy"), rng.standard_normal((5, 1, 1)).astype(np.float32))
np.save(os.path.join(OUT, "bad_shape.npy"), rng.standard_normal((1, 27, 28)).astype(np.float32))
np.save(os.path.join(OUT, "bad_f8.npy"), rng.standard_normal((1, 28, 28)))
np.save(os.path.join(OUT, "bad_fortran.npy"), np.asfortranarray(rng.standard_normal((1, 28, 28)).astype(np.float32)))
with open(os.path.join(OUT, "x.npy"), "rb") as f:
    data = f.read()
with open(os.path.join(OUT, "bad_short.npy"), "wb") as f:
    f.write(data[:-7])
