"""cnnviz: run a convolutional network on an OpenCL device and look inside it
from Python -- activations, filters, weights and gradient maps as numpy
arrays, rendered maps as PIL images that show inline in Jupyter.

    import cnnviz
    m = cnnviz.Model("configs/fashion_mnist.yaml")       # or an .onnx file
    m.predict("samples/fashion_mnist/images/0_tshirt.png")  # [Prediction(index, label, probability), ...]
    acts = m.activations(img, "conv2")                    # float32 [C, H, W]
    cam = m.attribute(img, "gradcam", layer="conv4")      # float32 [h, w]
    m.show(cam, img)                                      # PIL image: the map over the input

The package binds libcnnviz (the C library behind the cnnviz-cl command
line) through ctypes; it finds it through $CNNVIZ_LIBRARY, else the
system's library path (install it with `cmake --install build`).  See
help(cnnviz.Model) for the inputs every method takes.

Model        a network on a device: predict, output, activations, parameter,
             attribute, render, show
devices()    the OpenCL devices
write_run()  the command line's output folder (PNG, .npy, report)
library()    which libcnnviz is loaded, and its version
Error, UsageError, InputError, LibraryError: the exceptions
"""
__version__ = "0.4.0"

from .errors import Error, InputError, LibraryError, UsageError
from .functions import Device, devices, library, write_run
from .model import LayerInfo, Model, Prediction

__all__ = ["Model", "LayerInfo", "Prediction", "Device", "devices", "library", "write_run", "Error", "UsageError",
           "InputError", "LibraryError", "__version__"]
