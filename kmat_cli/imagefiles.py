"""The image-file pipeline: decode files, batch them, hand the batches over, run the image tower on them.

One pipeline for every reader of image files (the feature cache, ``kmat predict``), so a speed or reliability
fix lands once:

* decode: an :class:`ImageFiles` dataset turns ``files[i]`` into images with the caller's ``read`` function
  (``read(file, preprocess) -> [(tag, pixels)]``: a DICOM's frames, augmented views, ...); a file that
  cannot be read becomes an error row, never an exception (one bad image never stops a batch);
* batch and hand over: :func:`batches` decodes ``batch_size`` files per batch, in worker processes ahead of
  the model (how many: :func:`kmat_cli.threads.decode_workers`, the one worker policy) or in this process;
  workers end with this process even when it is killed (:class:`kmat_cli.signals.ParentWatch`);
* encode: :func:`encoded` runs the image tower on each batch (uint8 pixels are normalised on the model's
  device, see :class:`SplitPreprocess`) and yields the rows with their features.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import torch

from kmat_cli import threads
from kmat_cli.images import ImageError
from kmat_cli.signals import ParentWatch

__all__ = ["DECODE_SHARE", "Batch", "Collate", "ImageFiles", "Read", "SplitPreprocess", "batches", "encoded"]

DECODE_SHARE = 0.1  # adaptive workers: start them when decoding a batch takes more than this share of its use

Item = tuple[int, Any, "torch.Tensor | None", "str | None"]  # (file index, tag, pixels, error)
Batch = tuple[
    list[tuple[int, Any, "str | None"]], "torch.Tensor | None"
]  # ((index, tag, error) rows, pixels)


class SplitPreprocess:
    """A backbone's ``preprocess`` as two steps with the same result: ``self(img)`` in the decoding
    workers, then ``finish(batch)`` on whole batches.

    For a torchvision/open_clip ``Compose([..., ToTensor(), Normalize(mean, std)])`` the workers stop at
    uint8 RGB pixels (a quarter of the bytes to move between processes) and ``finish`` computes
    ``(x / 255 - mean) / std`` for the whole batch with torchvision's own elementwise operations, so the
    values are bit-for-bit those of ``preprocess(img)``. Any other transform runs whole in the workers and
    ``finish`` returns its batch unchanged.
    """

    def __init__(self, preprocess: Callable[[Any], torch.Tensor]) -> None:
        from torchvision.transforms import Compose, Normalize, ToTensor

        self.preprocess = preprocess
        self.head: Any = None
        self._keeps: dict[tuple[int, int], bool] = {}
        steps = getattr(preprocess, "transforms", None)
        if (
            isinstance(preprocess, Compose)
            and isinstance(steps, list)
            and len(steps) >= 2
            and isinstance(steps[-2], ToTensor)
            and isinstance(steps[-1], Normalize)
        ):
            from PIL import Image as PILImage

            self._pil_image = PILImage.Image
            self.head = Compose(steps[:-2])
            self.tail = Compose(steps[-2:])
            dtype = torch.get_default_dtype()
            self.mean = torch.as_tensor(steps[-1].mean, dtype=dtype).view(-1, 1, 1)
            self.std = torch.as_tensor(steps[-1].std, dtype=dtype).view(-1, 1, 1)

    def __call__(self, img: Any) -> torch.Tensor:
        """Worker side: uint8 (3, H, W) when the split applies and the image is RGB, else the full result."""
        if self.head is None:
            return self.preprocess(img)
        x = self.head(img)
        if isinstance(x, self._pil_image) and x.mode == "RGB":
            # torchvision's pil_to_tensor without its per-call overhead: the same (3, H, W) uint8 view
            return torch.from_numpy(np.array(x)).permute(2, 0, 1)
        return self.tail(x)

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Worker side for an image already decoded to (3, H, W) uint8 RGB pixels (a plain PNG,
        :mod:`kmat_cli.plainpng`): what ``self(img)`` gives for the same image as a PIL RGB image. The pixels
        pass as they are where every step before ``ToTensor`` keeps an H x W image unchanged
        (:meth:`keeps`), e.g. a resize and centre crop to the size the image already has."""
        if self.head is not None and self.keeps(int(pixels.shape[1]), int(pixels.shape[2])):
            return pixels
        from PIL import Image

        return self(Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB"))

    def keeps(self, height: int, width: int) -> bool:
        """Whether the steps before ``ToTensor`` leave an RGB image of ``height`` x ``width`` as it is: each is
        a torchvision ``Resize`` to that size (an int: the shorter side's length; or the two sides), a
        ``CenterCrop`` to it, or a conversion to RGB (open_clip's ``MaybeConvertMode``)."""
        key = (height, width)
        if key not in self._keeps:
            self._keeps[key] = self.head is not None and all(
                _keeps(step, height, width) for step in self.head.transforms
            )
        return self._keeps[key]

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> normalised float, as ``ToTensor`` then ``Normalize`` (float input as is)."""
        if pixels.dtype != torch.uint8:
            return pixels
        dev = pixels.device
        x = pixels.to(dtype=torch.get_default_dtype()).div(255)
        return x.sub_(self.mean.to(dev)).div_(self.std.to(dev))


def _keeps(step: Any, height: int, width: int) -> bool:
    """Whether one preprocessing step leaves an RGB image of ``height`` x ``width`` unchanged."""
    from torchvision.transforms import CenterCrop, Resize

    if isinstance(step, Resize):
        size = [step.size] if isinstance(step.size, int) else list(step.size)
        if len(size) == 1:
            return min(height, width) == size[0] and (
                step.max_size is None or max(height, width) <= step.max_size
            )
        return size == [height, width]
    if isinstance(step, CenterCrop):
        return list(step.size) == [height, width]
    return type(step).__name__ == "MaybeConvertMode" and getattr(step, "mode", None) == "RGB"


Read = Callable[
    [Any, SplitPreprocess], Sequence[tuple[Any, torch.Tensor]]
]  # (file, preprocess) -> [(tag, px)]


class ImageFiles(torch.utils.data.Dataset):
    """``files[i]`` -> its images: ``[(i, tag, pixels, None)]`` per image ``read`` makes of it, or
    ``[(i, None, None, reason)]`` when it cannot be read or preprocessed (never raises for a bad file).
    ``read`` must be picklable (a module-level function or an object of a module-level class) where worker
    processes are spawned. :meth:`__getitems__` decodes a whole batch in one call (the DataLoader uses it when
    present), so per-file overhead such as the warnings filter is paid once per batch."""

    def __init__(self, files: Sequence[Any], read: Read, preprocess: SplitPreprocess) -> None:
        self.files = list(files)
        self.read = read
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> list[Item]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[list[Item]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Pillow's large-image warning: keep stderr for progress
            return [self._decode(i) for i in indices]

    def _decode(self, i: int) -> list[Item]:
        try:
            return [(i, tag, pixels, None) for tag, pixels in self.read(self.files[i], self.preprocess)]
        except ImageError as exc:
            return [(i, None, None, exc.reason)]
        except Exception as exc:  # a preprocessing failure is this file's error too
            detail = " ".join(str(exc).split())
            return [(i, None, None, f"cannot preprocess image ({type(exc).__name__}: {detail})")]


class Collate:
    """A batch of files -> ((file index, tag, error) per row, the stacked pixels of the rows without
    error). ``finish_here``: apply ``finish`` to the stacked batch now; otherwise uint8 pixels stay uint8
    (a quarter of the bytes to move; the consumer normalises the whole batch). Mixed uint8/float batches
    are made float first. ``as_numpy``: the pixels as a numpy array, which crosses from a worker process
    to the main one inside the pickled batch (one copy through the pipe) instead of as a shared-memory
    tensor, whose file-descriptor hand-over costs a socket connection and an authentication per batch."""

    def __init__(
        self,
        finish: Callable[[torch.Tensor], torch.Tensor],
        finish_here: bool = False,
        as_numpy: bool = False,
    ) -> None:
        self.finish = finish
        self.finish_here = finish_here
        self.as_numpy = as_numpy

    def __call__(self, items: list[list[Item]]) -> Batch:
        rows = [(i, tag, err) for item in items for i, tag, _, err in item]
        pixels = [x for item in items for _, _, x, _ in item if x is not None]
        if len({x.dtype for x in pixels}) > 1:
            pixels = [self.finish(x[None])[0] for x in pixels]
        batch = torch.stack(pixels) if pixels else None
        if batch is not None and self.finish_here:
            batch = self.finish(batch)
        if batch is not None and self.as_numpy:
            return rows, batch.numpy()  # type: ignore[return-value]  # the numpy form, to cross a process boundary
        return rows, batch


def batches(
    dataset: ImageFiles,
    *,
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
    finish: bool = True,
    adaptive: bool = False,
) -> Generator[Batch, None, None]:
    """Decoded batches of ``batch_size`` files, in order; ``workers`` > 0 decodes in that many processes
    ahead of the consumer (4 batches each), 0 in the calling process. ``finish=False`` leaves uint8 pixels
    for the caller to pass through ``dataset.preprocess.finish`` (e.g. on a GPU).

    With workers, the batch at hand when they start is decoded in the calling process while they start
    (their start and first batch would otherwise be waited for), and the workers decode the rest. Without
    pinned memory (the CPU path) the workers send uint8 pixels as numpy arrays (see :class:`Collate`); this
    function yields them as tensors, normalised here when ``finish``.

    ``adaptive``: the first batch is decoded here and the workers start only if decoding it took more than
    :data:`DECODE_SHARE` of the time the consumer then spent on it (the model, the rows): where the model
    already uses every core, a decoding process only takes cores from it."""
    finish_fn = dataset.preprocess.finish
    here = Collate(finish_fn, finish_here=finish)
    n = len(dataset)
    chunks = [range(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    first = 0
    if adaptive and len(chunks) < 3:  # too few batches to measure and then gain anything
        workers = 0
    if adaptive and workers > 0:
        start = time.perf_counter()
        batch = here(dataset.__getitems__(chunks[0]))
        decoding = time.perf_counter() - start
        start = time.perf_counter()
        yield batch
        if decoding <= DECODE_SHARE * (time.perf_counter() - start):
            workers = 0
        first = 1
    if workers <= 0 or len(chunks) - first < 2:
        for chunk in chunks[first:]:
            yield here(dataset.__getitems__(chunk))
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_sampler=chunks[first + 1 :],  # type: ignore[arg-type]  # any iterable of index sequences works
        num_workers=min(workers, len(chunks) - first - 1),
        collate_fn=Collate(finish_fn, finish_here=False, as_numpy=not pin_memory),
        pin_memory=pin_memory,
        prefetch_factor=4,
        worker_init_fn=ParentWatch(),  # a worker ends with this process, even when it is SIGKILLed
    )
    stream = iter(loader)  # the workers start on the batch after this one
    closer: threading.Thread | None = None
    try:
        yield here(dataset.__getitems__(chunks[first]))
        for k in range(first + 1, len(chunks)):
            rows, pixels = next(stream)
            if k == len(chunks) - 1:  # the last batch: the workers exit while the consumer uses it
                closer = threading.Thread(target=next, args=(stream, None), daemon=True)
                closer.start()
            if pixels is not None and not isinstance(pixels, torch.Tensor):
                pixels = torch.from_numpy(pixels)
            if pixels is not None and finish:
                pixels = finish_fn(pixels)
            yield rows, pixels
    finally:
        if closer is not None:
            closer.join()
        del stream  # shuts the workers down (if not done yet), also when the consumer stops early


def encoded(
    backbone: Any,
    files: Sequence[Any],
    read: Read,
    *,
    batch_size: int,
    workers: int | None = None,
    chunk: int | None = None,
) -> Generator[Batch, None, None]:
    """The pipeline end to end: per batch of ``batch_size`` files, its rows ``(file index, tag, error)``
    and the image tower's raw features ``backbone.encode_image(pixels).float()`` (on the backbone's device;
    None when no image of the batch could be read), one feature row per row without error, in order.

    ``workers``: decoding processes (None: :func:`kmat_cli.threads.decode_workers`); ``chunk``: at most that
    many images through the tower at once (default ``batch_size``; a file may give several images).
    Closing the generator (or an exception in the consumer) ends the decoding workers at once."""
    device = torch.device(getattr(backbone, "device", "cpu"))
    cuda = device.type == "cuda"
    n_workers, adaptive = (
        threads.decode_workers(len(files), batch_size, device)
        if workers is None
        else (min(workers, len(files)), False)
    )
    dataset = ImageFiles(files, read, SplitPreprocess(backbone.preprocess))
    stream = batches(
        dataset,
        batch_size=batch_size,
        workers=n_workers,
        pin_memory=cuda,
        finish=device.type == "cpu",
        adaptive=adaptive,
    )
    step = chunk or batch_size
    try:
        for rows, pixels in stream:
            feats = None
            if pixels is not None:
                pixels = dataset.preprocess.finish(pixels.to(device, non_blocking=cuda))
                with torch.no_grad():
                    feats = torch.cat(
                        [
                            backbone.encode_image(pixels[i : i + step]).float()
                            for i in range(0, len(pixels), step)
                        ]
                    )
            yield rows, feats
    finally:
        stream.close()  # the decoding workers exit now, also on an error or an interrupt
