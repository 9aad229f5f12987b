"""The protocol's task plug-ins. Each module registers its tasks with
:func:`radiologynet.protocol.spec.register_task` when imported, as timm's model files
register their models; :mod:`radiologynet.protocol.spec` never imports them."""

from radiologynet.protocol.tasks import classification, luna16  # noqa: F401
