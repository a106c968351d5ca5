"""Network errors, said in one line, and retries for the transient ones only.

Transient (tried again, ``retries`` more times, waiting backoff * 2**k seconds): refused or
dropped connections, timeouts, a body cut short, HTTP 408, 425, 429 and 5xx. Anything
else (404, 403, 410, ...) is permanent: a second try would get the same answer.
"""
import time

import requests

TRANSIENT_STATUS = frozenset([408, 425, 429, 500, 502, 503, 504])


class DownloadError(RuntimeError):
    """Something could not be downloaded; the message (one line) names it.

    url: what failed (None when several things did). status: its HTTP status, if any.
    permanent: a retry would get the same answer (a 404, a 403, ...).
    What was fetched before the error stays on disk: running the same download again
    resumes.
    """

    def __init__(self, message, url=None, status=None, permanent=False):
        super(DownloadError, self).__init__(" ".join(str(message).split()))
        self.url = url
        self.status = status
        self.permanent = permanent


class Stopped(Exception):
    """The run is stopping (Ctrl-C): a worker thread gives up its download."""


class HTTPStatusError(IOError):
    """An HTTP answer that is not a success."""

    def __init__(self, status, reason=""):
        super(HTTPStatusError, self).__init__("HTTP {} {}".format(status, reason).strip())
        self.status = status


class ShortRead(IOError):
    """The body ended before the promised length (a dropped connection)."""


def check_status(resp):
    if resp.status_code >= 400:
        resp.close()
        raise HTTPStatusError(resp.status_code, resp.reason or "")


def is_transient(exc):
    """True for failures a retry can cure (see the module docstring)."""
    if isinstance(exc, HTTPStatusError):
        return exc.status in TRANSIENT_STATUS
    if isinstance(exc, (ShortRead, requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError, ConnectionError,
                        TimeoutError)):
        return True
    try:
        import botocore.exceptions as bce
    except ImportError:     # pragma: no cover - boto3 is a dependency
        return False
    if isinstance(exc, bce.ClientError):
        meta = exc.response.get("ResponseMetadata", {})
        code = exc.response.get("Error", {}).get("Code", "")
        return meta.get("HTTPStatusCode") in TRANSIENT_STATUS or \
            code in ("SlowDown", "Throttling", "RequestTimeout", "InternalError",
                     "ServiceUnavailable")
    transient = [bce.HTTPClientError, bce.IncompleteReadError]
    if hasattr(bce, "ResponseStreamingError"):
        transient.append(bce.ResponseStreamingError)
    return isinstance(exc, tuple(transient))


def describe(exc):
    """A short one-line reason: 'HTTP 503 Service Unavailable', 'connection refused', ..."""
    try:
        import botocore.exceptions as bce
        if isinstance(exc, bce.ClientError):
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return "HTTP {} {}".format(status, err.get("Code", "")).strip()
    except ImportError:     # pragma: no cover
        pass
    if isinstance(exc, (HTTPStatusError, ShortRead)):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    if isinstance(exc, requests.ConnectionError) or "onnection" in type(exc).__name__:
        for known in ("Connection refused", "Name or service not known", "Connection reset",
                      "timed out", "Network is unreachable", "No route to host",
                      "Temporary failure in name resolution", "Connection aborted"):
            if known.lower() in text.lower():
                return known.lower()
        return "connection failed"
    return " ".join("{}: {}".format(type(exc).__name__, text).split())[:300]


def with_retries(fn, url, retries=4, backoff=0.5, stop=None):
    """fn() until it succeeds, a permanent error, or retries + 1 tries; failures end in a
    DownloadError naming url. stop: a threading.Event that cuts the waits short (the run
    is stopping)."""
    attempt = 0
    while True:
        try:
            return fn()
        except (requests.RequestException, IOError, ConnectionError, TimeoutError) as e:
            error = e
        except Exception as e:      # botocore errors
            if type(e).__module__.split(".")[0] != "botocore":
                raise
            error = e
        transient = is_transient(error)
        status = getattr(error, "status", None)
        response = getattr(error, "response", None)
        if status is None and isinstance(response, dict):       # botocore
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if not transient or attempt >= retries:
            how = "after {} tries".format(attempt + 1) if transient else \
                "a permanent error, not retried"
            raise DownloadError("{}: {} ({})".format(url, describe(error), how), url=url,
                                status=status, permanent=not transient) from error
        wait = backoff * 2 ** attempt
        if stop is not None:
            if stop.wait(wait):
                raise Stopped()
        elif wait:
            time.sleep(wait)
        attempt += 1
