"""The built-in demo and its synthetic data: the quick fine-tuning demo (:mod:`.quick`,
``radiologynet demo``), the full pipeline (:mod:`.full`, ``radiologynet demo --full``),
a synthetic DICOM archive (:mod:`.synthetic_archive`), synthetic LUNA16 volumes
(:mod:`.synthetic_luna16`) and synthetic sweeps in the run-results format (:mod:`.sweep`)."""
