"""Byte accounting for the S3 store: a read-only filesystem view that counts what
it reads.

pyarrow exposes no transfer statistics for S3, so every opened object is wrapped in
a Python file whose reads add to the connector's counter.
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.fs as pafs


class ByteCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.opened = 0

    def add(self, count: int) -> None:
        with self._lock:
            self.bytes += count

    def open(self) -> None:
        with self._lock:
            self.opened += 1


def _read_only() -> PermissionError:
    return PermissionError("the s3 connector is read-only")


class CountingHandler(pafs.FileSystemHandler):
    """A read-only view of another filesystem that counts the bytes read through it.

    pyarrow exposes no transfer statistics for S3, so every opened object is wrapped
    in a Python file whose reads add to the connector's counter.
    """

    def __init__(self, inner: pafs.FileSystem, counter: ByteCounter) -> None:
        self._inner = inner
        self._counter = counter

    def get_type_name(self) -> str:
        return f"counting+{self._inner.type_name}"

    def normalize_path(self, path: str) -> str:
        return str(self._inner.normalize_path(path))

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return list(self._inner.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return list(self._inner.get_file_info(selector))

    def open_input_file(self, path: str) -> pa.NativeFile:
        self._counter.open()
        reader = _CountingReader(self._inner.open_input_file(path), self._counter)
        return pa.PythonFile(reader, mode="r")

    def open_input_stream(self, path: str) -> pa.NativeFile:
        self._counter.open()
        reader = _CountingReader(self._inner.open_input_stream(path), self._counter)
        return pa.PythonFile(reader, mode="r")

    # The connector never writes; refusing here keeps a bug from ever mutating the store.
    # pyarrow calls these positionally, so the unused parameters are underscored.

    def create_dir(self, _path: str, _recursive: bool) -> None:
        raise _read_only()

    def delete_dir(self, _path: str) -> None:
        raise _read_only()

    def delete_dir_contents(self, _path: str, _missing_dir_ok: bool = False) -> None:
        raise _read_only()

    def delete_root_dir_contents(self) -> None:
        raise _read_only()

    def delete_file(self, _path: str) -> None:
        raise _read_only()

    def move(self, _src: str, _dest: str) -> None:
        raise _read_only()

    def copy_file(self, _src: str, _dest: str) -> None:
        raise _read_only()

    def open_output_stream(self, _path: str, _metadata: object) -> pa.NativeFile:
        raise _read_only()

    def open_append_stream(self, _path: str, _metadata: object) -> pa.NativeFile:
        raise _read_only()


class _CountingReader:
    """The file protocol pyarrow's PythonFile needs, over a native S3 object."""

    def __init__(self, inner: pa.NativeFile, counter: ByteCounter) -> None:
        self._inner = inner
        self._counter = counter
        self.mode = "rb"

    @property
    def closed(self) -> bool:
        return bool(self._inner.closed)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._inner.seekable())

    def writable(self) -> bool:
        return False

    def read(self, nbytes: int | None = None) -> bytes:
        data = self._inner.read(nbytes)
        self._counter.add(len(data))
        return bytes(data)

    def read_buffer(self, nbytes: int | None = None) -> pa.Buffer:
        # PythonFile prefers this when present: it hands Arrow the buffer without a copy.
        buffer = self._inner.read_buffer(nbytes)
        self._counter.add(buffer.size)
        return buffer

    def seek(self, position: int, whence: int = 0) -> int:
        return int(self._inner.seek(position, whence))

    def tell(self) -> int:
        return int(self._inner.tell())

    def size(self) -> int:
        return int(self._inner.size())

    def close(self) -> None:
        self._inner.close()
