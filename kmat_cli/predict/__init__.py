"""``kmat predict``: classify files and folders of images with exported prompt embeddings.

The package, by concept: :mod:`~kmat_cli.predict.inputs` (the input walk), :mod:`~kmat_cli.predict.classifier`
(prompts and image tower as a classifier), :mod:`~kmat_cli.predict.onnx`
(a ``classifier.onnx`` through onnxruntime), :mod:`~kmat_cli.predict.file_backbone` (the backbone config
a prompts file brings, checked), :mod:`~kmat_cli.predict.output` (the row writers),
:mod:`~kmat_cli.predict.destination` (where the rows go) and :mod:`~kmat_cli.predict.run` (the run and its
summary). Decoding and batching are the core's image-file
pipeline (:mod:`kmat_cli.imagefiles`). The names below are the public API (``from kmat_cli.predict import
predict``).
"""

from kmat_cli.imagefiles import ImageFiles, SplitPreprocess
from kmat_cli.predict.classifier import Classifier, check_match, load_classifier, open_classifier
from kmat_cli.predict.inputs import InMemoryImage, find_inputs, gather
from kmat_cli.predict.onnx import OnnxClassifier, load_onnx_classifier
from kmat_cli.predict.output import FORMATS, PROB_PREFIX, Prediction, Row, RowList, RowWriter, path_text
from kmat_cli.predict.run import FrameReader, Summary, check_options, predict, run_predict
from kmat_cli.threads import decode_workers as auto_workers

__all__ = [
    "FORMATS",
    "PROB_PREFIX",
    "Classifier",
    "FrameReader",
    "ImageFiles",
    "InMemoryImage",
    "OnnxClassifier",
    "Prediction",
    "Row",
    "RowList",
    "RowWriter",
    "SplitPreprocess",
    "Summary",
    "auto_workers",
    "check_match",
    "check_options",
    "find_inputs",
    "gather",
    "load_classifier",
    "load_onnx_classifier",
    "open_classifier",
    "path_text",
    "predict",
    "run_predict",
]
