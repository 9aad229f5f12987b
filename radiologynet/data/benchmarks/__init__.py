"""The paper's downstream benchmarks, one reader module each: Brain Tumor MRI (``btmr``),
COVID-19 radiographs (``covid19``), RSNA bone age (``boneage``), GRAZPEDWRI-DX osteopenia
(``grazpedwri``) and LUNA16 nodule segmentation (``luna16``, imported when used: it needs
SimpleITK)."""
