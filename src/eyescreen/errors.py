"""Exception hierarchy for eyescreen.

EyescreenError
 +-- ImageError
 |    +-- ImageDecodeError        a supported image file that is corrupt or truncated
 |    +-- UnsupportedImageError   bytes that are not an image in a supported format
 |    +-- ImageTooLargeError      more pixels than the configured limit
 +-- FetchError
 |    +-- UnsafeURLError          URL scheme or address is not allowed
 |    +-- FetchTimeoutError       the remote server did not respond in time
 |    +-- RemoteResponseError     the remote server returned an error status
 |    +-- ResponseTooLargeError   the remote body is over the byte limit
 +-- RequestError
 |    +-- InvalidRequestError     a required field is missing, or the body is malformed
 |    +-- RequestTooLargeError    the request body is over the upload limit
 |    +-- RequestTimeoutError     the client sent the body too slowly
 |    +-- ServerBusyError         every inference slot and queue place is taken
 +-- ModelLoadError              the ONNX model or its card cannot be loaded
 +-- DatasetError                a training or evaluation folder is unusable
 +-- TrainingConfigError         a training setting is out of its range (also a ValueError)
 +-- SettingsError               an environment variable has an invalid value
"""

from __future__ import annotations


class EyescreenError(Exception):
    """Base class of every error that eyescreen raises on purpose."""


class ImageError(EyescreenError):
    """The bytes given as an image cannot be used."""


class ImageDecodeError(ImageError):
    """The bytes are a supported image format, but corrupt or truncated."""


class UnsupportedImageError(ImageError):
    """The bytes are not an image, or an image in a format that eyescreen does not read."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit."""


class FetchError(EyescreenError):
    """Downloading an image from a URL failed."""


class UnsafeURLError(FetchError):
    """The URL's scheme or address is not allowed."""


class FetchTimeoutError(FetchError):
    """The remote server did not respond within the time limit."""


class RemoteResponseError(FetchError):
    """The remote server returned an error status or a body that is not an image."""


class ResponseTooLargeError(FetchError):
    """The remote body is larger than the byte limit."""


class RequestError(EyescreenError):
    """An HTTP request cannot be served as sent."""


class InvalidRequestError(RequestError):
    """The request lacks a required field or is not valid JSON or multipart."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RequestTooLargeError(RequestError):
    """The request body is larger than the upload limit."""


class RequestTimeoutError(RequestError):
    """The client sent the request body too slowly."""


class ServerBusyError(RequestError):
    """Every inference slot and every queue place is taken; the client should retry later."""

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ModelLoadError(EyescreenError):
    """The ONNX model or its model card cannot be loaded."""


class DatasetError(EyescreenError):
    """A data folder or manifest cannot be used for training or evaluation."""


class SettingsError(EyescreenError):
    """An environment variable has a value that cannot be used."""


class TrainingConfigError(EyescreenError, ValueError):
    """A training setting is out of the range that training can use."""
