"""kmat: cross-modal prompt learning for medical imaging (K-MaT and baselines).

Learn prompt context vectors on a few labelled high-end images (dermoscopy, CT, mammography) with a frozen
vision-language backbone, and deploy the learned low-end prompt embeddings zero-shot on the low-end
modality (clinical photo, X-ray, ultrasound).
"""

import os as _os

__version__ = "0.1.0"

# Bit-reproducible CPU math: without this, MKL picks code paths by memory alignment, so two identical
# runs (or a resumed run) can differ in the last bits. It must be set before the first MKL call of the
# process, hence here; a value the user set wins.
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
