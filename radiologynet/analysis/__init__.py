"""Analysis of trained models and sweeps: the paper's statistics (:mod:`.stats`), tables,
figures and reports of a results folder (:mod:`.report`), and Grad-CAM (:mod:`.explain`)."""
