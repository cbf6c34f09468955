"""kmat: cross-modal prompt learning for medical imaging (K-MaT and baselines).

Learn prompt context vectors on a few labelled high-end images (dermoscopy, CT, mammography) with a frozen
vision-language backbone, and deploy the learned low-end prompt embeddings zero-shot on the low-end
modality (clinical photo, X-ray, ultrasound).
"""

__version__ = "0.1.0"
