"""The library's exception types. Each message names the file, weight or argument at fault
and says what to do about it."""

from __future__ import annotations


class RadiologyNetError(Exception):
    """Base class of every error this library raises on purpose."""


class UnknownModelError(RadiologyNetError, KeyError):
    """An architecture name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownWeightsError(RadiologyNetError, KeyError):
    """A weight tag or version that does not exist (for that architecture)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class WeightsNotReleasedError(RadiologyNetError):
    """A weight the paper describes but its authors never published."""


class WeightsNotFoundError(RadiologyNetError, FileNotFoundError):
    """A weight that could not be found in any of the places looked."""


class ChecksumError(RadiologyNetError):
    """A downloaded or cached file whose sha256 differs from the recorded one."""


class CheckpointFormatError(RadiologyNetError, ValueError):
    """A checkpoint or archive that is not in a format the converter knows."""


class ImageReadError(RadiologyNetError, ValueError):
    """An image or volume that could not be read; the message names the file and reason."""


class DatasetNotFoundError(RadiologyNetError, FileNotFoundError):
    """A dataset missing or laid out differently from its public release."""


class DatasetFormatError(RadiologyNetError, ValueError):
    """A dataset file (sheet, CSV) whose columns or values are not those of its release."""


class UnknownTaskError(RadiologyNetError, KeyError):
    """A benchmark task name that is not in ``radiologynet.data.TASKS``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(RadiologyNetError, ValueError):
    """An argument outside its allowed range (a fraction, a split ratio, a seed)."""


class InvalidSettingError(InvalidArgumentError):
    """A training setting outside its allowed range, raised as
    ``InvalidSettingError(setting, problem)``: the message is ``"<setting> <problem>"``
    (``batch_size must be an integer >= 1, got 0``); the command line names the option
    (``--batch-size``) instead."""

    @property
    def setting(self) -> str:
        """The setting's name (a ``TrainConfig`` field)."""
        return str(self.args[0])

    @property
    def problem(self) -> str:
        """What is wrong with its value."""
        return str(self.args[1])

    def __str__(self) -> str:
        return f"{self.setting} {self.problem}"


class StatisticsInputError(RadiologyNetError, ValueError):
    """Groups a statistical test cannot be run on (too few groups or values, NaNs)."""


class ResultsFormatError(RadiologyNetError, ValueError):
    """A results folder missing, empty or not in the run-results format."""


class ArchiveError(RadiologyNetError, ValueError):
    """An image archive that cannot be pseudo-labelled or pretrained on as given."""


class MissingDependencyError(RadiologyNetError, ImportError):
    """An optional package that the asked-for feature needs is not installed; the message
    names the ``radiologynet[...]`` extra that brings it."""


class OutputWriteError(RadiologyNetError, OSError):
    """A result or checkpoint that could not be written (full disk, read-only folder); the
    message names the file and the cause, and the previous file is left intact."""


class StaleRunError(RadiologyNetError):
    """A run folder that holds a run made with another configuration."""


class ImageReadWarning(UserWarning):
    """An image or volume was read, but part of its header was contradictory or invalid and
    was ignored or corrected (the message names the file, the tag and what was used)."""


class RunInProgressError(RadiologyNetError):
    """A run folder that another run (another process) is writing now: its lock is held."""


class ExportError(RadiologyNetError):
    """A model the exporter (ONNX, TorchScript, torch.export) could not convert; the
    message names the model, the format and the exporter's reason."""


class ExportVerificationError(ExportError):
    """An exported model (ONNX, TorchScript, torch.export) whose outputs on real images
    differ from PyTorch's beyond the tolerance; the message gives the differences, and no
    file is left behind."""


class FeatureFileError(RadiologyNetError, ValueError):
    """A feature file (``radiologynet embed``'s parquet) that cannot be probed as given:
    unreadable, not in the embedding format, or for other images or labels than the
    files it is compared with; the message names the files and what differs."""
