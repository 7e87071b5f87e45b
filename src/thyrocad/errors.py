"""Exception types. Every error a user can cause derives from `ThyrocadError`.

Messages say what was wrong and what to do; they never contain patient names or IDs.
"""


class ThyrocadError(Exception):
    """Base class of all errors raised on purpose by thyrocad."""


class ConfigError(ThyrocadError, ValueError):
    """A setting is invalid: unknown name, out of range, or impossible for the data at hand.

    Raised before any work starts; the message names the setting and what to do. The CLI
    answers it with exit code 2 (a bad setting), every other `ThyrocadError` with 1.
    """


class OutputExistsError(ConfigError):
    """An output folder holds files that another command or other settings wrote; nothing is
    overwritten without --force."""


# --- reading images -------------------------------------------------------------------------


class InputError(ThyrocadError):
    """An input image file cannot be used."""


class NotDicomError(InputError):
    """The file is neither DICOM nor a supported image export (PNG/JPG)."""


class TruncatedFileError(InputError):
    """The file ends before its declared content."""


class NoPixelDataError(InputError):
    """The DICOM object carries no (or empty) pixel data."""


class UnsupportedTransferSyntaxError(InputError):
    """The pixel data is encoded in a transfer syntax no installed decoder handles."""


class PixelDecodeError(InputError):
    """The pixel data could not be decoded (corrupt or non-conforming compressed stream)."""


class NotPlanarError(InputError):
    """The object is not a planar neck view: a SPECT volume, a whole-body sweep, a PET slice..."""


class ImageSizeError(InputError):
    """Declared or actual image dimensions are absurd for a planar neck view."""


class InconsistentHeaderError(InputError):
    """The header contradicts itself (frame count vs detector vector, bits, ...)."""


class FileAccessError(InputError):
    """The path does not exist, is a folder, or cannot be read."""


class MalformedDicomError(InputError):
    """The DICOM structure cannot be parsed, or a required attribute is missing or unreadable."""


class UnsupportedPixelFormatError(InputError):
    """The pixels are not one grayscale count sample (colour, float, 32-bit, ...)."""


class NotNuclearMedicineError(NotPlanarError):
    """The object is not a nuclear-medicine image (another modality or SOP class)."""


class StudyMergeError(InputError):
    """The files of one study cannot form one study (different pixel spacings, a view twice)."""


class ViewConflictError(InputError):
    """The caller's view contradicts the view the file states, or cannot apply to it."""


class NeckFieldError(NotPlanarError):
    """The neck field of a whole-body sweep cannot be found (no head top or shoulders)."""


class OutsideDomainError(InputError):
    """With `--strict`: the input lies outside what thyrocad was validated on (not I-131, ...)."""


# --- cohorts ----------------------------------------------------------------------------------


class CohortError(ThyrocadError):
    """A labelled cohort folder is invalid. `problems` lists every problem found, one per row."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        detail = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(message + detail)


# --- preprocessing ----------------------------------------------------------------------------


class PreprocessError(ThyrocadError):
    """The preprocessing pipeline cannot run: invalid configuration or unusable count image."""


class NonFiniteCountsError(InputError):
    """The count image holds NaN or infinite values (a corrupt file or a bad rescale)."""


# --- experiments ------------------------------------------------------------------------------


class ExperimentError(ThyrocadError):
    """An experiment cannot run or resume (inconsistent results folder, a failed run)."""


# --- statistics -------------------------------------------------------------------------------


class StatisticsError(ThyrocadError):
    """A metric or statistical test got inputs it cannot give a defined answer for."""


class ZeroVarianceError(StatisticsError):
    """A test would divide a non-zero difference by a zero standard error (degenerate scores)."""


# --- models and training ----------------------------------------------------------------------


class ModelError(ThyrocadError):
    """A model cannot be built (unknown name, bad settings)."""


class UnknownModelError(ModelError, ConfigError):
    """A model name that is not registered; the message lists the registered ones."""


class WeightsError(ModelError):
    """Pretrained weights are missing, corrupt, or belong to another architecture."""


class TrainingDataError(ThyrocadError):
    """The data given to training cannot be used (one class only, empty, shape mismatch)."""


class CheckpointError(ThyrocadError):
    """A training checkpoint cannot be read, or does not match the run it should resume."""


class BundleError(ThyrocadError):
    """A model bundle folder is missing files, is corrupt, or has an unknown format version."""


# --- web server and DICOM node ----------------------------------------------------------------


class StoreError(ThyrocadError):
    """The server's database cannot be opened or refuses an operation (duplicate user, ...)."""


class AuthError(ThyrocadError):
    """A user name or password is not acceptable (empty, too short, unknown user)."""


class DicomNodeError(ThyrocadError):
    """The DICOM node cannot start, or a peer refused an association or a C-STORE."""


class BundleVersionError(BundleError):
    """A model bundle was written by an incompatible thyrocad or bundle format version."""


# --- inference, explanation, export -----------------------------------------------------------


class NoUsableViewError(InputError):
    """A study has no view the model can be applied to (no views, or every view blank/flat)."""


class ExportError(ThyrocadError):
    """A model cannot be exported to ONNX, or an exported file does not match its bundle."""


class DicomResultError(ThyrocadError):
    """DICOM results (SR / Secondary Capture) cannot be written for a source file."""


class ObserverInputError(ThyrocadError):
    """The studies or labels given to a baseline observer cannot be used."""
