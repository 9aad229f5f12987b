"""Your own foundation model: pseudo-labelling an unlabelled archive
(:mod:`.pseudolabel`), pretraining on the pseudo-labels (:mod:`.pretrain`), and the
vanilla U-Net's reconstruction pretraining (:mod:`.reconstruction`)."""
