"""A pickle reader for data files: numeric numpy arrays, numpy scalars and plain Python values, nothing else.

`pickle.Unpickler` hands the globals a file names to the real callables. numpy's pickle helpers (``dtype``
set-state, ``scalar``, ``_reconstruct``, ``_frombuffer``, ``ndarray``) trust their arguments, so even an allow-list
of numpy globals lets a hostile file forge object pointers or read past a buffer. This reader therefore calls no
global named in the file: it interprets the pickle opcodes itself (as torch's ``weights_only`` unpickler does) and
every allowed global is a stand-in that checks its arguments and builds the value from them:

* arrays: a dtype of a plain numeric kind (bool, int, uint, float, complex) made from its type string, with only
  the byte order of the pickled dtype state honoured; a shape; exactly ``prod(shape) * itemsize`` bytes;
* numpy scalars: such a dtype and exactly ``itemsize`` bytes;
* containers: dict, list, tuple, set, frozenset, OrderedDict, defaultdict (plain factory); bytes and bytearray
  from bytes or latin-1 text (how protocols 0-2 and Python 2 write them).

Limits apply while the data is built, before anything large exists: nesting depth, the *expanded* size (every use
of a shared memo reference counts the object again, so a few bytes cannot stand for a large tree), the length of
one container, and dict keys / set elements (scalars or flat tuples of them, sized before they are hashed; more
than a few keys of one container sharing a hash are refused as hash flooding).
Declared lengths larger than what is left of the file are refused before anything is read.

Every failure is an :class:`UnsafePickleError` that names the file; it is both a :class:`PoseDataError` and a
``pickle.UnpicklingError``.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import re
import reprlib
import struct
from collections import OrderedDict, defaultdict
from itertools import islice
from typing import Any, BinaryIO, Optional, Union

import numpy as np

from .pose_errors import PoseDataError


class UnsafePickleError(PoseDataError, pickle.UnpicklingError):
    """The file cannot be loaded by the restricted reader: it is not a well-formed pickle, it refers to something
    outside the allow-list (which could run code or forge memory), or it exceeds a size limit."""


# --------------------------------------------------------------------------------------------------
# Bounded repr for error messages
# --------------------------------------------------------------------------------------------------


class _BoundedRepr(reprlib.Repr):
    """`reprlib.Repr` that never formats a whole value: no full int formatting, no sorting of big dicts and sets,
    arrays as shape and dtype. The time and length of a message stay bounded whatever the file holds."""

    def __init__(self):
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = 60
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = 6

    def repr_int(self, x, level):
        if x.bit_length() > 64:  # formatting a huge int is quadratic (and refused past 4300 digits)
            return f"<int of {x.bit_length()} bits>"
        return repr(x)

    def repr_dict(self, x, level):
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}" for k, v in islice(x.items(), self.maxdict)]
        return "{" + ", ".join(items) + (", ..." if len(x) > self.maxdict else "") + "}"

    def _repr_unsorted(self, x, level, left, right):
        if level <= 0:
            return f"{left}...{right}"
        items = [self.repr1(e, level - 1) for e in islice(x, self.maxset)]
        return left + ", ".join(items) + (", ..." if len(x) > self.maxset else "") + right

    def repr_set(self, x, level):
        return self._repr_unsorted(x, level, "{", "}") if x else "set()"

    def repr_frozenset(self, x, level):
        return self._repr_unsorted(x, level, "frozenset({", "})") if x else "frozenset()"

    def repr_ndarray(self, x, level):
        return f"array(shape={x.shape}, dtype={x.dtype})"

    def repr_bytearray(self, x, level):
        return "bytearray(" + self.repr_bytes(bytes(x[: self.maxstring]), level) + ")"

    def repr_bytes(self, x, level):
        s = repr(x[: self.maxstring])
        return s + "..." if len(x) > self.maxstring else s

    def repr_instance(self, x, level):
        # dict/list subclasses (OrderedDict, defaultdict) and anything else: never the type's own, unbounded repr
        if isinstance(x, dict):
            return self.repr_dict(x, level)
        if isinstance(x, list):
            return self.repr_list(x, level)
        if isinstance(x, tuple):
            return self.repr_tuple(x, level)
        if isinstance(x, np.ndarray):
            return self.repr_ndarray(x, level)
        if isinstance(x, (float, complex, np.generic, np.dtype)) or x is None:
            return repr(x)[: self.maxother]
        return f"<{type(x).__name__}>"


_short = _BoundedRepr().repr


def short_repr(value: Any) -> str:
    """A repr of ``value`` of bounded length, computed in bounded time (for error messages)."""
    return _short(value)


# --------------------------------------------------------------------------------------------------
# Stand-ins for the allowed globals
# --------------------------------------------------------------------------------------------------


class _Global:
    """A global named by the file: its name and a builder that checks arguments; never the real callable."""

    __slots__ = ("qualname", "build", "factory")

    def __init__(self, qualname: str, build=None, factory=None):
        self.qualname, self.build, self.factory = qualname, build, factory


class _Pending:
    """A numpy dtype or array whose value comes with the following BUILD (set-state) opcode."""

    __slots__ = ("kind", "dtype", "memo_keys")

    def __init__(self, kind: str, dtype: Optional[np.dtype] = None):
        self.kind, self.dtype, self.memo_keys = kind, dtype, []


# Plain numeric type strings as numpy pickles them ("f4", "i8", "b1", ...): no byte order, no fields, no subarray.
_TYPESTR = re.compile(r"[biufc][0-9]{1,2}")
_NUMERIC_KINDS = "biufc"
# Values that hold no references: their cost is fixed and they can be dict keys.
_ATOMS = frozenset({type(None), bool, float, complex} | {np.dtype(c).type for c in "?bBhHiIlLqQefdgFDG"})
# Keys of one dict or set that may share a hash. str and bytes hashes are salted; int, float, complex and tuple
# hashes are not, and any number of keys can be made to share one (ints that differ by multiples of 2**61 - 1), which
# makes building the dict quadratic: minutes for 60000 keys. Distinct real keys practically never share a hash.
_MAX_SHARED_HASH = 8
_LATIN1 = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1"})

# Cost model of the expanded size (bytes): every object, every reference to it, and its payload.
_OBJ = 16
_SLOT = 8
_CHUNK = 1 << 20
_MAX_KEY_ITEMS = 16  # elements of a tuple used as a dict key or set element
_MAX_NDIM = 32
_MAX_GLOBAL_NAME = 256

# The pickled form of torch's legacy (pre-zip) file magic number, which such a file starts with.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


def _is_flag(x) -> bool:
    return type(x) is bool or (type(x) is int and x in (0, 1))


def _as_bytes(u: "_Reader", data, what: str) -> bytes:
    """Raw bytes: bytes, or (Python 2 / protocol 0 pickles) latin-1 text."""
    if type(data) in (bytes, bytearray):
        return data
    if type(data) is str:
        try:
            raw = data.encode("latin-1")
        except UnicodeEncodeError:
            raise u.refuse(f"{what}: the text holds characters outside latin-1, so it is not raw bytes") from None
        u.alloc(_OBJ + len(raw))
        return raw
    raise u.refuse(f"{what} must be bytes; got {u.describe(data)}")


def _check_dtype(u: "_Reader", dtype, what: str) -> np.dtype:
    if type(dtype) is _Pending:
        raise u.refuse(f"{what}: a numpy dtype is used before its state was set")
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS or dtype.fields or dtype.subdtype:
        raise u.refuse(f"{what}: only plain numeric dtypes are allowed; got {u.describe(dtype)}")
    return dtype


def _check_shape(u: "_Reader", shape, what: str) -> tuple:
    if type(shape) is not tuple or len(shape) > _MAX_NDIM:
        raise u.refuse(f"{what}: the shape must be a tuple of at most {_MAX_NDIM} sizes; got {u.describe(shape)}")
    for d in shape:
        if type(d) is not int or not 0 <= d <= u.max_items:
            raise u.refuse(f"{what}: shape {short_repr(shape)} has a size that is not an integer in [0, {u.max_items}]")
    return shape


def _check_size(u: "_Reader", buf, dtype: np.dtype, shape: tuple, what: str) -> int:
    """The element count, once the data is exactly prod(shape) * itemsize bytes."""
    count = math.prod(shape)
    if count > u.max_items:
        raise u.refuse(f"{what}: shape {shape} holds {count} elements, more than max_items={u.max_items}")
    nbytes = count * dtype.itemsize
    if len(buf) != nbytes:
        raise u.refuse(
            f"{what}: an array of shape {shape} and dtype {dtype} takes {nbytes} bytes, but the file gives {len(buf)}"
        )
    u.alloc(_OBJ + nbytes)
    return count


def _make_array(u: "_Reader", buf, dtype: np.dtype, shape: tuple, order: str, copy: bool, what: str) -> np.ndarray:
    """An array from exactly prod(shape) * itemsize bytes (one copy at most; bool bytes normalised to 0/1)."""
    count = _check_size(u, buf, dtype, shape, what)
    flat = np.frombuffer(buf, dtype=dtype, count=count) if count else np.empty(0, dtype)
    if dtype.kind == "b":  # a bool byte other than 0/1 is not a valid numpy bool
        flat, copy = flat.view(np.uint8) != 0, False
    arr = flat.reshape(shape, order=order)
    return arr.copy(order="K") if copy else arr


def _build_dtype(u: "_Reader", args: tuple):
    # numpy.dtype(typestr, align, copy): the byte order follows in the BUILD state
    if not 1 <= len(args) <= 3 or type(args[0]) is not str or not all(_is_flag(a) for a in args[1:]):
        raise u.refuse(f"numpy.dtype{short_repr(args)}: expected (type string, align flag, copy flag)")
    typestr = args[0]
    dtype = None
    if _TYPESTR.fullmatch(typestr):
        try:
            dtype = np.dtype(typestr)
        except (TypeError, ValueError):
            dtype = None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS:
        raise u.refuse(
            f"numpy.dtype({short_repr(typestr)}): only plain numeric dtypes (bool, int, uint, float, complex) are "
            f"allowed; object, structured, void, string and datetime dtypes are not"
        )
    return _Pending("dtype", dtype)


def _finish_dtype(u: "_Reader", pending: _Pending, state) -> np.dtype:
    # numpy's dtype state is (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]).
    # For a plain numeric dtype all but the byte order are fixed; other values are a forged dtype.
    ok = (
        type(state) is tuple
        and len(state) in (8, 9)
        and all(type(s) is int for s in (state[0], *state[5:8]))
        and (state[0], len(state)) in ((3, 8), (4, 9))
        and (len(state) == 8 or state[8] is None)
        and type(state[1]) is str and state[1] in ("<", ">", "|", "=")
        and state[2] is None and state[3] is None and state[4] is None
        and state[5:8] == (-1, -1, 0)
    )
    if not ok:
        raise u.refuse(
            f"numpy.dtype({pending.dtype.str[1:]!r}) with state {short_repr(state)}: only a plain byte order may be "
            f"set; fields, sizes, alignment, flags and metadata of a dtype cannot be given"
        )
    dtype = pending.dtype
    return dtype.newbyteorder(state[1]) if state[1] in "<>" else dtype


def _build_reconstruct(u: "_Reader", args: tuple):
    # numpy's _reconstruct(ndarray, (0,), b"b") makes an empty array that BUILD fills: a placeholder here
    if len(args) != 3 or type(args[0]) is not _Global or args[0].qualname != "numpy.ndarray":
        raise u.refuse(f"numpy _reconstruct{short_repr(args)}: only plain numpy.ndarray arrays are allowed")
    return _Pending("array")


def _finish_array(u: "_Reader", state) -> np.ndarray:
    what = "numpy array state"
    if type(state) is not tuple or len(state) not in (4, 5):
        raise u.refuse(f"{what} must be (version, shape, dtype, is_fortran, rawdata); got {u.describe(state)}")
    if len(state) == 5:
        if type(state[0]) is not int or state[0] != 1:
            raise u.refuse(f"{what}: unknown version {short_repr(state[0])}")
        state = state[1:]
    shape, dtype, fortran, raw = state
    shape = _check_shape(u, shape, what)
    dtype = _check_dtype(u, dtype, what)
    if not _is_flag(fortran):
        raise u.refuse(f"{what}: is_fortran must be a flag; got {u.describe(fortran)}")
    if type(raw) is list:
        raise u.refuse(f"{what}: the data is a list of Python objects (an object array); only numeric data is allowed")
    raw = _as_bytes(u, raw, what)
    if dtype.kind == "b" or type(raw) is not bytes:
        return _make_array(u, raw, dtype, shape, "F" if fortran else "C", True, what)
    _check_size(u, raw, dtype, shape, what)
    # numpy's own set-state, with arguments now known to be sound (a plain numeric dtype made here, int sizes,
    # exactly the bytes they need): like pickle, it keeps a large buffer as the array's memory instead of a copy
    arr = np.ndarray((0,), np.uint8)
    arr.__setstate__((shape, dtype, bool(fortran), raw))
    return arr


def _build_frombuffer(u: "_Reader", args: tuple):
    # numpy._core.numeric._frombuffer(buffer, dtype, shape, order[, axis_order]): protocol 5, in-band buffers
    what = "numpy _frombuffer"
    if len(args) not in (4, 5):
        raise u.refuse(f"{what}{short_repr(args)}: expected (buffer, dtype, shape, order[, axis_order])")
    buf, dtype, shape, order = args[:4]
    if type(buf) not in (bytes, bytearray):
        raise u.refuse(f"{what}: the buffer must be in-band bytes; got {u.describe(buf)}")
    dtype = _check_dtype(u, dtype, what)
    shape = _check_shape(u, shape, what)
    if type(order) is not str or order not in ("C", "F", "K"):
        raise u.refuse(f"{what}: order must be 'C', 'F' or 'K'; got {short_repr(order)}")
    # like numpy: an array over a bytearray buffer shares it (writable); over bytes it is read-only
    if order != "K":
        return _make_array(u, buf, dtype, shape, order, False, what)
    # neither C nor F contiguous: numpy gives the memory-order shape and the permutation of the axes
    axis_order = args[4] if len(args) == 5 else None
    axes = sorted(a if type(a) is int else -1 for a in axis_order) if type(axis_order) is tuple else None
    if axes != list(range(len(shape))):
        raise u.refuse(f"{what}: order 'K' needs an axis_order that permutes the axes; got {short_repr(axis_order)}")
    return _make_array(u, buf, dtype, shape, "C", False, what).transpose(axis_order)


def _build_scalar(u: "_Reader", args: tuple):
    # numpy._core.multiarray.scalar(dtype, raw bytes of one item)
    what = "numpy scalar"
    if len(args) != 2:
        raise u.refuse(f"{what}{short_repr(args)}: expected (dtype, bytes)")
    dtype = _check_dtype(u, args[0], what)
    raw = _as_bytes(u, args[1], what)
    if len(raw) != dtype.itemsize:
        raise u.refuse(f"{what} of dtype {dtype} takes {dtype.itemsize} bytes; the file gives {len(raw)}")
    if dtype.kind == "b":
        return np.bool_(raw != b"\x00")
    return np.frombuffer(raw, dtype=dtype, count=1)[0]


def _build_encode(u: "_Reader", args: tuple):
    # _codecs.encode(text, "latin1"): how protocols 0-2 write bytes. Other codecs are slow or do more than copy.
    if not 1 <= len(args) <= 3 or type(args[0]) is not str:
        raise u.refuse(f"_codecs.encode{short_repr(args)}: expected (text, 'latin1')")
    encoding = args[1] if len(args) > 1 else "utf-8"
    errors = args[2] if len(args) == 3 else "strict"
    if type(encoding) is not str or encoding.lower() not in _LATIN1 or type(errors) is not str or errors != "strict":
        raise u.refuse(
            f"_codecs.encode with codec {short_repr(encoding)}: only 'latin1' (bytes in protocols 0-2) is allowed"
        )
    return _as_bytes(u, args[0], "_codecs.encode")


def _build_bytes(u: "_Reader", args: tuple):
    if not args:
        return b""
    if len(args) == 1 and type(args[0]) is bytes:
        return args[0]
    raise u.refuse(
        f"builtins.bytes{short_repr(args)}: only bytes() or bytes(b'...') is allowed (no sizes, no iterables)"
    )


def _build_bytearray(u: "_Reader", args: tuple):
    if not args:
        return bytearray()
    if len(args) == 1 and type(args[0]) is bytes:
        u.alloc(_OBJ + len(args[0]))
        return bytearray(args[0])
    if len(args) == 2 and type(args[0]) is str and type(args[1]) is str and args[1].lower() in _LATIN1:
        raw = _as_bytes(u, args[0], "builtins.bytearray")
        u.alloc(_OBJ + len(raw))
        return bytearray(raw)
    raise u.refuse(
        f"builtins.bytearray{short_repr(args)}: only bytearray(b'...') or bytearray(text, 'latin-1') is allowed"
    )


def _build_complex(u: "_Reader", args: tuple):
    if len(args) <= 2 and all(type(a) in (int, float) for a in args):
        try:
            return complex(*args)
        except OverflowError:
            pass
    raise u.refuse(f"builtins.complex{short_repr(args)}: expected one or two real numbers")


def _sequence_arg(u: "_Reader", args: tuple, name: str):
    if not args:
        return []
    if len(args) == 1 and type(args[0]) in (list, tuple, set, frozenset):
        return list(args[0])
    raise u.refuse(f"{name}{short_repr(args)}: expected no argument or one list, tuple or set")


def _pairs_arg(u: "_Reader", args: tuple, name: str):
    items = _sequence_arg(u, args, name) if not (len(args) == 1 and type(args[0]) is dict) else list(args[0].items())
    for p in items:
        if type(p) not in (list, tuple) or len(p) != 2:
            raise u.refuse(f"{name}: expected (key, value) pairs; got {u.describe(p)}")
    return items


def _build_defaultdict(u: "_Reader", args: tuple):
    factory = args[0] if args else None
    if len(args) > 1 or not (factory is None or (type(factory) is _Global and factory.factory is not None)):
        raise u.refuse(
            f"collections.defaultdict{short_repr(args)}: the default factory must be None or a plain type "
            f"(list, dict, set, int, float, str, ...)"
        )
    return u.new_mapping(defaultdict(factory.factory if factory is not None else None), [])


def _globals() -> dict:
    table = {
        ("numpy._core.multiarray", "_reconstruct"): _build_reconstruct,
        ("numpy._core.multiarray", "scalar"): _build_scalar,
        ("numpy._core.numeric", "_frombuffer"): _build_frombuffer,
        ("numpy", "dtype"): _build_dtype,
        ("numpy", "ndarray"): None,  # only as the class argument of _reconstruct
        ("_codecs", "encode"): _build_encode,
        ("builtins", "bytes"): _build_bytes,
        ("builtins", "bytearray"): _build_bytearray,
        ("builtins", "complex"): _build_complex,
        ("builtins", "set"): lambda u, a: u.new_set(set(), _sequence_arg(u, a, "builtins.set")),
        ("builtins", "frozenset"): lambda u, a: u.new_frozenset(_sequence_arg(u, a, "builtins.frozenset")),
        ("builtins", "list"): lambda u, a: u.new_list(_sequence_arg(u, a, "builtins.list")),
        ("builtins", "tuple"): lambda u, a: u.new_tuple(_sequence_arg(u, a, "builtins.tuple")),
        ("builtins", "dict"): lambda u, a: u.new_mapping({}, _pairs_arg(u, a, "builtins.dict")),
        ("collections", "OrderedDict"):
            lambda u, a: u.new_mapping(OrderedDict(), _pairs_arg(u, a, "collections.OrderedDict")),
        ("collections", "defaultdict"): _build_defaultdict,
    }
    factories = {"list": list, "dict": dict, "set": set, "frozenset": frozenset, "tuple": tuple, "int": int,
                 "float": float, "str": str, "bool": bool, "bytes": bytes, "complex": complex}
    out = {}
    for (module, name), build in table.items():
        out[(module, name)] = _Global(f"{module}.{name}", build, factories.get(name) if module == "builtins" else None)
    for name, factory in factories.items():  # int, float, str, bool: a defaultdict factory, never called here
        out.setdefault(("builtins", name), _Global(f"builtins.{name}", None, factory))
        out[("builtins", name)].factory = factory
    out[("collections", "OrderedDict")].factory = OrderedDict
    return out


_GLOBALS = _globals()
_MODULE_ALIASES = {
    "__builtin__": "builtins",  # Python 2
    "numpy.core.multiarray": "numpy._core.multiarray",  # numpy 1
    "numpy.core.numeric": "numpy._core.numeric",
}


# --------------------------------------------------------------------------------------------------
# The interpreter
# --------------------------------------------------------------------------------------------------


class _Reader:
    """Interprets one pickle from a binary file, building only allowed values within the limits."""

    def __init__(self, f, source: str, size: Optional[int], max_depth: int, max_expanded_bytes: Optional[int],
                 max_items: int, max_key_bytes: int):
        self.f, self.source, self.size = f, source, size
        self.max_depth, self.max_items, self.max_key_bytes = int(max_depth), int(max_items), int(max_key_bytes)
        self.fixed_limit = max_expanded_bytes is not None
        self.limit = int(max_expanded_bytes) if self.fixed_limit else _default_limit(size or 0)
        self.buf, self.pos, self.base = b"", 0, 0  # base: stream offset of buf[0]
        self.op_pos = 0
        self.stack: list = []
        self.metastack: list = []
        self.memo: dict = {}
        # id(container) -> [cost, depth, special, obj, sealed] (mutable) or (cost, depth, special, obj); obj pins the id
        self.info: dict = {}
        self.allocated = 0
        self.key_hashes: dict = {}  # id(dict or set) -> {hash: keys}, for keys with unsalted hashes

    # ---------------------------------------------------------------- errors

    def describe(self, x) -> str:
        if type(x) is _Global:
            return f"the global {x.qualname}"
        if type(x) is _Pending:
            return f"a numpy {x.kind} without its state"
        return f"{type(x).__name__} {short_repr(x)}"

    def refuse(self, msg: str) -> UnsafePickleError:
        return UnsafePickleError(f"Refusing to load {self.source}: {msg} (pickle opcode at byte {self.op_pos}).")

    def corrupt(self, msg: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"Cannot load {self.source}: {msg} (pickle opcode at byte {self.op_pos}); the file is damaged or not "
            f"a pickle."
        )

    def too_big(self, what: str, size: int) -> UnsafePickleError:
        return self.refuse(
            f"{what} would expand to {size} bytes (shared references counted each time they are used), more than "
            f"the limit of {self.limit} bytes (max_expanded_bytes; default max(64 MiB, 16 x the file size))"
        )

    # ---------------------------------------------------------------- accounting

    def check_limit(self, size: int, what: str):
        if size > self.limit:
            if not self.fixed_limit and self.size is None:  # unknown size: the limit follows the bytes read so far
                self.limit = _default_limit(self.base + self.pos)
            if size > self.limit:
                raise self.too_big(what, size)

    def alloc(self, n: int):
        self.allocated += n
        if self.allocated > self.limit:
            self.check_limit(self.allocated, "the data built so far")

    def measure(self, x) -> tuple:
        """(expanded cost, depth, special) of a value about to be stored; seals a mutable container."""
        t = type(x)
        if t is str or t is bytes or t is bytearray:
            return _OBJ + len(x), 0, False
        if t is int:
            return _OBJ + (x.bit_length() >> 3), 0, False
        if t in _ATOMS:
            return _OBJ, 0, False
        info = self.info.get(id(x))
        if info is not None and info[3] is x:
            if type(info) is list:
                info[4] = True
            return info[0], info[1], info[2]
        if t is np.ndarray:
            return _OBJ + x.nbytes, 1, False
        if t is tuple:  # small tuples of atoms are not recorded: measure them again
            return self._tuple_cost(x)
        if t is _Global:
            return _OBJ, 0, True
        if t is _Pending:
            raise self.refuse(f"a numpy {x.kind} is used before its state was set (BUILD)")
        if isinstance(x, np.dtype):
            return _OBJ, 0, False
        raise self.refuse(f"unexpected value {self.describe(x)}")

    def _tuple_cost(self, items) -> tuple:
        cost, depth, special = _OBJ + _SLOT * len(items), 1, False
        for x in items:
            t = type(x)
            if t is str or t is bytes:  # the common cases first: every numpy array pickles a few tuples
                cost += _OBJ + len(x)
                continue
            if t in _ATOMS:
                cost += _OBJ
                continue
            c, d, s = self.measure(x)
            cost += c
            if d >= depth:
                depth = d + 1
            special = special or s
        return cost, depth, special

    def key_cost(self, k) -> int:
        """Expanded cost of a dict key or set element (a scalar or a flat tuple of at most 16), before it is hashed."""
        if type(k) is tuple:
            if len(k) > _MAX_KEY_ITEMS:
                raise self.refuse(f"a dict key or set element is a tuple of {len(k)} items (at most {_MAX_KEY_ITEMS})")
            n = _SLOT * len(k)
            for e in k:
                if type(e) is tuple:
                    raise self.refuse(
                        "a dict key or set element is a tuple holding a tuple; keys must be scalars or flat tuples "
                        "of scalars"
                    )
                n += self._scalar_key_size(e)
        else:
            n = self._scalar_key_size(k)
        if n > self.max_key_bytes:
            raise self.refuse(f"a dict key or set element of {n} bytes (max_key_bytes={self.max_key_bytes})")
        return _OBJ + n

    def _scalar_key_size(self, k) -> int:
        t = type(k)
        if t is str or t is bytes:
            return len(k)
        if t is int:
            return k.bit_length() >> 3
        if t in _ATOMS:
            return 8
        raise self.refuse(
            f"a dict key or set element is {self.describe(k)}; keys must be scalars (str, bytes, None, bool, "
            f"numbers) or flat tuples of them"
        )

    def check_hashes(self, owner, keys):
        """Refuses keys of one container that share a hash beyond chance (a hash-flooding pattern)."""
        counts = None
        for k in keys:
            t = type(k)
            if t is str or t is bytes:  # salted: cannot be made to collide
                continue
            if counts is None:
                counts = self.key_hashes.setdefault(id(owner), {})
            h = hash(k)  # bounded: key_cost sized it first
            c = counts.get(h, 0) + 1
            if c == 1:
                self.alloc(_OBJ)
            elif c > _MAX_SHARED_HASH:
                raise self.refuse(
                    f"more than {_MAX_SHARED_HASH} keys of one dict or set share one hash (e.g. {short_repr(k)}): "
                    f"a hash-flooding pattern, which would make building it take quadratic time"
                )
            counts[h] = c

    def value_info(self, x, where: str) -> tuple:
        cost, depth, special = self.measure(x)
        if special:
            raise self.refuse(f"{where} holds a class or function reference ({self.describe(x)}); only data is allowed")
        return cost, depth

    def target(self, obj, kinds, op: str) -> list:
        info = self.info.get(id(obj))
        if type(obj) not in kinds or info is None or info[3] is not obj:
            raise self.refuse(f"{op} on {self.describe(obj)}; only built-in containers can be filled")
        if info[4]:
            raise self.refuse(
                f"{op} changes a {type(obj).__name__} after it was stored elsewhere (self-referencing or "
                f"shared-then-modified data is not supported)"
            )
        return info

    def grew(self, info: list, obj, cost: int, depth: int, n: int, slots: int, what: str):
        """Checks a container about to receive n items (slots references) and records its new cost and depth."""
        if info[4]:  # the container was stored inside itself
            raise self.refuse(f"a {what} contains itself; self-referencing data is not supported")
        if len(obj) + n > self.max_items:
            raise self.refuse(f"a {what} of more than {self.max_items} items (max_items)")
        if depth > self.max_depth:
            raise self.refuse(f"data nested more than {self.max_depth} levels deep (max_depth)")
        self.check_limit(cost, f"a {what}")
        self.alloc(_SLOT * slots)
        info[0], info[1] = cost, depth

    # ---------------------------------------------------------------- containers

    def register(self, obj):
        self.alloc(_OBJ)
        self.info[id(obj)] = [_OBJ, 1, False, obj, False]
        return obj

    def extend(self, lst, items: list):
        info = self.target(lst, (list,), "APPEND")
        cost, depth = info[0], info[1]
        for x in items:
            c, d = self.value_info(x, "a list")
            cost += _SLOT + c
            if d >= depth:
                depth = d + 1
        self.grew(info, lst, cost, depth, len(items), len(items), "list")
        lst.extend(items)

    def set_items(self, mapping, items: list):
        info = self.target(mapping, (dict, OrderedDict, defaultdict), "SETITEM")
        if len(items) % 2:
            raise self.corrupt("SETITEMS with an odd number of items")
        cost, depth = info[0], info[1]
        for i in range(0, len(items), 2):
            c = self.key_cost(items[i])
            v, d = self.value_info(items[i + 1], "a dict")
            cost += 2 * _SLOT + c + v
            if d >= depth:
                depth = d + 1
        self.grew(info, mapping, cost, depth, len(items) // 2, len(items), "dict")
        self.check_hashes(mapping, items[0::2])
        for i in range(0, len(items), 2):
            mapping[items[i]] = items[i + 1]

    def add_items(self, s, items: list):
        info = self.target(s, (set,), "ADDITEMS")
        cost = info[0]
        for x in items:
            cost += _SLOT + self.key_cost(x)
        self.grew(info, s, cost, 2, len(items), len(items), "set")
        self.check_hashes(s, items)
        s.update(items)

    def new_list(self, items: list):
        lst = self.register([])
        self.extend(lst, items)
        return lst

    def new_mapping(self, mapping, pairs: list):
        self.register(mapping)
        self.set_items(mapping, [x for p in pairs for x in p])
        return mapping

    def new_set(self, s, items: list):
        self.register(s)
        self.add_items(s, items)
        return s

    def new_frozenset(self, items: list):
        cost = _OBJ
        for x in items:
            cost += _SLOT + self.key_cost(x)
        if len(items) > self.max_items:
            raise self.refuse(f"a frozenset of more than {self.max_items} items (max_items)")
        self.check_limit(cost, "a frozenset")
        self.alloc(_OBJ + _SLOT * len(items))
        self.check_hashes(items, items)
        self.key_hashes.pop(id(items), None)
        fs = frozenset(items)
        self.info[id(fs)] = (cost, 2, False, fs)
        return fs

    def new_tuple(self, items: list):
        n = len(items)
        if n > self.max_items:
            raise self.refuse(f"a tuple of more than {self.max_items} items (max_items)")
        cost, depth, special = self._tuple_cost(items)
        if depth > self.max_depth:
            raise self.refuse(f"data nested more than {self.max_depth} levels deep (max_depth)")
        self.check_limit(cost, "a tuple")
        self.alloc(_OBJ + _SLOT * n)
        tup = tuple(items)
        if depth > 1 or special or n > _MAX_KEY_ITEMS:  # else measure() recomputes it cheaply
            self.info[id(tup)] = (cost, depth, special, tup)
        return tup

    # ---------------------------------------------------------------- reading

    def read(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if end <= len(self.buf):
            self.pos = end
            return self.buf[pos:end]
        return self._read_slow(n)

    def _read_slow(self, n: int) -> bytes:
        if self.size is not None and n > self.size - self.base - self.pos:
            left = self.size - self.base - self.pos
            raise self.refuse(f"the pickle declares {n} bytes of data but only {left} bytes of the file are left")
        parts = [self.buf[self.pos:]]
        need = n - len(parts[0])
        self.base += len(self.buf)
        self.buf, self.pos = b"", 0
        while need > 0:
            if need < _CHUNK:
                chunk = self.f.read(_CHUNK)
                if not chunk:
                    raise self.truncated()
                if len(chunk) > need:  # keep the rest as the buffer
                    parts.append(chunk[:need])
                    self.buf, self.pos = chunk, need
                    break
            else:  # unknown size: grow in pieces, so a false length cannot allocate what the stream does not hold
                chunk = self.f.read(need if self.size is not None else min(need, 64 * _CHUNK))
                if not chunk:
                    raise self.truncated()
            parts.append(chunk)
            self.base += len(chunk)
            need -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readline(self) -> bytes:
        buf, pos = self.buf, self.pos
        i = buf.find(b"\n", pos)
        if i >= 0:
            self.pos = i + 1
            return buf[pos:i]
        parts = [buf[pos:]]
        self.base += len(buf)
        self.buf, self.pos = b"", 0
        while True:
            chunk = self.f.read(_CHUNK)
            if not chunk:
                raise self.truncated()
            i = chunk.find(b"\n")
            if i >= 0:
                parts.append(chunk[:i])
                self.buf, self.pos = chunk, i + 1
                return b"".join(parts)
            parts.append(chunk)
            self.base += len(chunk)

    def truncated(self) -> UnsafePickleError:
        if self.base + self.pos == 0 and not self.stack:
            return UnsafePickleError(f"Cannot load {self.source}: the file is empty (0 bytes); it is not a pickle.")
        return self.corrupt(
            f"the file is truncated: it ends after {self.base + self.pos} bytes, before the pickle's STOP opcode"
        )

    def fill(self):
        """Reads the first chunk (the file's head is checked for known non-pickle formats)."""
        self.buf, self.pos = self.f.read(_CHUNK), 0

    def next_opcode(self) -> int:
        self.base += len(self.buf)
        self.buf, self.pos = self.f.read(_CHUNK), 0
        if not self.buf:
            raise self.truncated()
        self.pos = 1
        return self.buf[0]

    # ---------------------------------------------------------------- main loop

    def load(self):
        dispatch = _DISPATCH
        try:
            while True:
                pos = self.pos
                if pos < len(self.buf):
                    code = self.buf[pos]
                    self.pos = pos + 1
                else:
                    code = self.next_opcode()
                self.op_pos = self.base + self.pos - 1
                if code == 0x2E:  # STOP
                    break
                handler = dispatch[code]
                if handler is None:
                    raise self.corrupt(f"unknown opcode {bytes([code])!r}")
                handler(self)
            if not self.stack:
                raise self.corrupt("STOP with an empty stack")
            result = self.stack.pop()
            cost, _ = self.value_info(result, "the pickle's result")
            self.check_limit(cost, "the result")
            return result
        except UnsafePickleError:
            raise
        except (IndexError, KeyError, ValueError, TypeError, OverflowError, UnicodeError, struct.error) as e:
            detail = str(e)
            detail = detail[:200] + "..." if len(detail) > 200 else detail
            raise self.corrupt(f"{type(e).__name__}: {detail}") from None

    def unread_position(self) -> int:
        """Stream offset just past the STOP opcode."""
        return self.base + self.pos

    # ---------------------------------------------------------------- stack helpers

    def pop_mark(self) -> list:
        if not self.metastack:
            raise self.corrupt("an opcode needs a MARK that is not there")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def push_string(self, raw: bytes, kind: str):
        self.alloc(_OBJ + len(raw))
        if kind == "utf8":
            self.stack.append(str(raw, "utf-8", "surrogatepass"))
        elif kind == "latin1":  # Python 2 str (bytes and text alike) decodes as latin-1, as numpy needs
            self.stack.append(raw.decode("latin-1"))
        elif kind == "bytes":
            self.stack.append(raw)
        else:
            self.stack.append(bytearray(raw))

    def sized(self, fmt: str, width: int) -> int:
        n = struct.unpack(fmt, self.read(width))[0]
        if n < 0:
            raise self.corrupt(f"negative length {n}")
        if self.size is not None and n > self.size - self.base - self.pos:
            left = self.size - self.base - self.pos
            raise self.refuse(f"the pickle declares {n} bytes of data but only {left} bytes of the file are left")
        if self.allocated + n > self.limit:  # before reading: the object is counted when it is made
            self.check_limit(self.allocated + n, f"a {n}-byte string")
        return n

    def find_global(self, module: str, name: str):
        if len(module) > _MAX_GLOBAL_NAME or len(name) > _MAX_GLOBAL_NAME:
            raise self.refuse(f"the pickle refers to a global with a {max(len(module), len(name))}-character name")
        canonical = _MODULE_ALIASES.get(module, module)
        g = _GLOBALS.get((canonical, name))
        if g is None:
            raise self.refuse(
                f"the pickle refers to the global '{module}.{name}', which is not a numpy array/scalar or a plain "
                f"Python container. Pose pickles only need those; a pickle that names other globals can run "
                f"arbitrary code when loaded. If you trust this file, convert it to plain dicts, lists and numpy "
                f"arrays first"
            )
        self.stack.append(g)


def _default_limit(size: int) -> int:
    return max(64 * _CHUNK, 16 * size)


# ---------------------------------------------------------------- opcode handlers (each: u -> None)


def _op_mark(u):
    if len(u.metastack) >= u.max_depth + 16:  # marks nest with the data; far deeper is no pose pickle
        raise u.refuse(f"more than {u.max_depth + 16} nested MARKs (max_depth={u.max_depth})")
    u.alloc(_OBJ)
    u.metastack.append(u.stack)
    u.stack = []


def _op_pop(u):
    if u.stack:
        u.stack.pop()
    else:
        u.pop_mark()


def _op_pop_mark(u):
    u.pop_mark()


def _op_dup(u):
    u.alloc(_SLOT)
    u.stack.append(u.stack[-1])


def _op_proto(u):
    proto = u.read(1)[0]
    if proto > pickle.HIGHEST_PROTOCOL:
        raise u.corrupt(f"unsupported pickle protocol {proto}")


def _op_frame(u):
    n = struct.unpack("<Q", u.read(8))[0]
    if u.size is not None and n > u.size - u.base - u.pos:
        left = u.size - u.base - u.pos
        raise u.corrupt(f"the file is truncated: a frame of {n} bytes, more than the {left} bytes left")


def _int_line(u, line: bytes, long: bool):
    if len(line) > 4300:  # Python refuses longer decimal ints; they would be quadratic to parse
        raise u.refuse(f"a {len(line)}-digit decimal integer")
    if long and line.endswith(b"L"):
        line = line[:-1]
    if not long and line == b"00":
        return False
    if not long and line == b"01":
        return True
    return int(line, 0)


def _op_int(u):
    u.alloc(_OBJ)
    u.stack.append(_int_line(u, u.readline(), False))


def _op_long(u):
    u.alloc(_OBJ)
    u.stack.append(_int_line(u, u.readline(), True))


def _op_binint(u):
    u.stack.append(struct.unpack("<i", u.read(4))[0])


def _op_binint1(u):
    u.stack.append(u.read(1)[0])


def _op_binint2(u):
    u.stack.append(struct.unpack("<H", u.read(2))[0])


def _op_long1(u):
    n = u.read(1)[0]
    u.alloc(_OBJ + n)
    u.stack.append(int.from_bytes(u.read(n), "little", signed=True))


def _op_long4(u):
    n = u.sized("<i", 4)
    u.alloc(_OBJ + n)
    u.stack.append(int.from_bytes(u.read(n), "little", signed=True))


def _op_float(u):
    line = u.readline()
    if len(line) > 400:
        raise u.corrupt("a float literal of more than 400 characters")
    u.stack.append(float(line))


def _op_binfloat(u):
    u.stack.append(struct.unpack(">d", u.read(8))[0])


def _op_none(u):
    u.stack.append(None)


def _op_true(u):
    u.stack.append(True)


def _op_false(u):
    u.stack.append(False)


def _op_string(u):
    # protocol 0 Python 2 str: a quoted, escaped literal
    line = u.readline().rstrip(b"\r")
    if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
        raise u.corrupt("a protocol-0 string that is not quoted")
    u.push_string(codecs.escape_decode(line[1:-1])[0], "latin1")


def _op_unicode(u):
    raw = u.readline()
    u.alloc(_OBJ + len(raw))
    u.stack.append(str(raw, "raw-unicode-escape"))


def _op_binstring(u):
    u.push_string(u.read(u.sized("<i", 4)), "latin1")


def _op_short_binstring(u):
    u.push_string(u.read(u.read(1)[0]), "latin1")


def _op_binunicode(u):
    u.push_string(u.read(u.sized("<I", 4)), "utf8")


def _op_binunicode8(u):
    u.push_string(u.read(u.sized("<Q", 8)), "utf8")


def _op_short_binunicode(u):
    u.push_string(u.read(u.read(1)[0]), "utf8")


def _op_binbytes(u):
    u.push_string(u.read(u.sized("<I", 4)), "bytes")


def _op_binbytes8(u):
    u.push_string(u.read(u.sized("<Q", 8)), "bytes")


def _op_short_binbytes(u):
    u.push_string(u.read(u.read(1)[0]), "bytes")


def _op_bytearray8(u):
    u.push_string(u.read(u.sized("<Q", 8)), "bytearray")


def _op_empty_list(u):
    u.stack.append(u.register([]))


def _op_empty_dict(u):
    u.stack.append(u.register({}))


def _op_empty_set(u):
    u.stack.append(u.register(set()))


def _op_empty_tuple(u):
    u.stack.append(())


def _op_list(u):
    items = u.pop_mark()  # first: it replaces u.stack
    u.stack.append(u.new_list(items))


def _op_dict(u):
    items = u.pop_mark()
    d = u.register({})
    u.set_items(d, items)
    u.stack.append(d)


def _op_tuple(u):
    items = u.pop_mark()  # first: it replaces u.stack
    u.stack.append(u.new_tuple(items))


def _op_tuple_n(n):
    def op(u):
        if len(u.stack) < n:
            raise u.corrupt(f"TUPLE{n} with fewer than {n} items on the stack")
        items = u.stack[-n:]
        del u.stack[-n:]
        u.stack.append(u.new_tuple(items))
    return op


def _op_frozenset(u):
    items = u.pop_mark()  # first: it replaces u.stack
    u.stack.append(u.new_frozenset(items))


def _op_append(u):
    x = u.stack.pop()
    u.extend(u.stack[-1], [x])


def _op_appends(u):
    items = u.pop_mark()
    u.extend(u.stack[-1], items)


def _op_setitem(u):
    v = u.stack.pop()
    k = u.stack.pop()
    u.set_items(u.stack[-1], [k, v])


def _op_setitems(u):
    items = u.pop_mark()
    u.set_items(u.stack[-1], items)


def _op_additems(u):
    items = u.pop_mark()
    u.add_items(u.stack[-1], items)


def _memo_put(u, idx: int):
    obj = u.stack[-1]
    u.alloc(_SLOT)
    u.memo[idx] = obj
    if type(obj) is _Pending:  # BUILD will replace it here too
        obj.memo_keys.append(idx)


def _memo_get(u, idx: int):
    try:
        obj = u.memo[idx]
    except KeyError:
        raise u.corrupt(f"memo entry {idx} is used before it was stored") from None
    u.alloc(_SLOT)
    u.stack.append(obj)


def _op_put(u):
    _memo_put(u, int(u.readline()))


def _op_binput(u):
    _memo_put(u, u.read(1)[0])


def _op_long_binput(u):
    _memo_put(u, struct.unpack("<I", u.read(4))[0])


def _op_memoize(u):
    _memo_put(u, len(u.memo))


def _op_get(u):
    _memo_get(u, int(u.readline()))


def _op_binget(u):
    _memo_get(u, u.read(1)[0])


def _op_long_binget(u):
    _memo_get(u, struct.unpack("<I", u.read(4))[0])


def _decode_name(u, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise u.corrupt(f"a global name that is not UTF-8 text: {short_repr(raw)}") from None


def _op_global(u):
    module = _decode_name(u, u.readline())
    name = _decode_name(u, u.readline())
    u.find_global(module, name)


def _op_stack_global(u):
    name = u.stack.pop()
    module = u.stack.pop()
    if type(module) is not str or type(name) is not str:
        raise u.corrupt("STACK_GLOBAL with a module or name that is not a string")
    u.find_global(module, name)


def _op_reduce(u):
    args = u.stack.pop()
    func = u.stack[-1]
    if type(func) is not _Global:
        raise u.refuse(f"the pickle calls {u.describe(func)}; only allow-listed globals may be called")
    if type(args) is not tuple:
        raise u.corrupt(f"REDUCE with arguments that are not a tuple ({u.describe(args)})")
    if func.build is None:
        if func.qualname == "numpy.ndarray":
            raise u.refuse(
                "the pickle calls numpy.ndarray(...) directly, which would store uninitialised memory; "
                "arrays must come with their data (numpy's _reconstruct or _frombuffer)"
            )
        raise u.refuse(f"the pickle calls {func.qualname}(...); it may only be a defaultdict factory here")
    u.stack[-1] = func.build(u, args)


def _op_build(u):
    state = u.stack.pop()
    obj = u.stack[-1]
    if type(obj) is not _Pending:
        raise u.refuse(
            f"the pickle sets the state of {u.describe(obj)} (BUILD); only numpy dtypes and arrays take a state"
        )
    value = _finish_dtype(u, obj, state) if obj.kind == "dtype" else _finish_array(u, state)
    u.stack[-1] = value
    for k in obj.memo_keys:
        if u.memo.get(k) is obj:
            u.memo[k] = value


def _refusing(msg: str):
    def op(u):
        raise u.refuse(msg)
    return op


def _op_newobj(u):
    cls = u.stack[-2] if len(u.stack) >= 2 else None
    name = cls.qualname if type(cls) is _Global else "a class"
    raise u.refuse(f"the pickle creates an instance of {name} (NEWOBJ); {_ONLY_DATA}")


_ONLY_DATA = "only numpy arrays and plain containers are allowed"
_IN_BAND = "protocol 5 data must be in the file (pickle.dump without buffer_callback)"
_PERSISTENT_ID = (
    "the pickle refers to persistent ids, as torch checkpoints do for their tensors; this is not a pose pickle. "
    "A file written by torch.save must be loaded with torch.load, and a pose pickle holds numpy arrays"
)

_DISPATCH: list = [None] * 256
for _code, _fn in {
    pickle.MARK: _op_mark, pickle.POP: _op_pop, pickle.POP_MARK: _op_pop_mark, pickle.DUP: _op_dup,
    pickle.PROTO: _op_proto, pickle.FRAME: _op_frame,
    pickle.INT: _op_int, pickle.LONG: _op_long, pickle.BININT: _op_binint, pickle.BININT1: _op_binint1,
    pickle.BININT2: _op_binint2, pickle.LONG1: _op_long1, pickle.LONG4: _op_long4,
    pickle.FLOAT: _op_float, pickle.BINFLOAT: _op_binfloat,
    pickle.NONE: _op_none, pickle.NEWTRUE: _op_true, pickle.NEWFALSE: _op_false,
    pickle.STRING: _op_string, pickle.UNICODE: _op_unicode, pickle.BINSTRING: _op_binstring,
    pickle.SHORT_BINSTRING: _op_short_binstring, pickle.BINUNICODE: _op_binunicode,
    pickle.BINUNICODE8: _op_binunicode8, pickle.SHORT_BINUNICODE: _op_short_binunicode,
    pickle.BINBYTES: _op_binbytes, pickle.BINBYTES8: _op_binbytes8, pickle.SHORT_BINBYTES: _op_short_binbytes,
    pickle.BYTEARRAY8: _op_bytearray8,
    pickle.EMPTY_LIST: _op_empty_list, pickle.EMPTY_DICT: _op_empty_dict, pickle.EMPTY_SET: _op_empty_set,
    pickle.EMPTY_TUPLE: _op_empty_tuple, pickle.LIST: _op_list, pickle.DICT: _op_dict, pickle.TUPLE: _op_tuple,
    pickle.TUPLE1: _op_tuple_n(1), pickle.TUPLE2: _op_tuple_n(2), pickle.TUPLE3: _op_tuple_n(3),
    pickle.FROZENSET: _op_frozenset,
    pickle.APPEND: _op_append, pickle.APPENDS: _op_appends, pickle.SETITEM: _op_setitem,
    pickle.SETITEMS: _op_setitems, pickle.ADDITEMS: _op_additems,
    pickle.PUT: _op_put, pickle.BINPUT: _op_binput, pickle.LONG_BINPUT: _op_long_binput, pickle.MEMOIZE: _op_memoize,
    pickle.GET: _op_get, pickle.BINGET: _op_binget, pickle.LONG_BINGET: _op_long_binget,
    pickle.GLOBAL: _op_global, pickle.STACK_GLOBAL: _op_stack_global, pickle.REDUCE: _op_reduce,
    pickle.BUILD: _op_build,
    pickle.NEWOBJ: _op_newobj, pickle.NEWOBJ_EX: _op_newobj,
    pickle.INST: _refusing(f"the pickle creates a class instance (INST); {_ONLY_DATA}"),
    pickle.OBJ: _refusing(f"the pickle creates a class instance (OBJ); {_ONLY_DATA}"),
    pickle.EXT1: _refusing("the pickle uses the copyreg extension registry (EXT1); only plain globals are allowed"),
    pickle.EXT2: _refusing("the pickle uses the copyreg extension registry (EXT2); only plain globals are allowed"),
    pickle.EXT4: _refusing("the pickle uses the copyreg extension registry (EXT4); only plain globals are allowed"),
    pickle.PERSID: _refusing(_PERSISTENT_ID), pickle.BINPERSID: _refusing(_PERSISTENT_ID),
    pickle.NEXT_BUFFER: _refusing(f"the pickle uses out-of-band buffers (NEXT_BUFFER); {_IN_BAND}"),
    pickle.READONLY_BUFFER: _refusing(f"the pickle uses out-of-band buffers (READONLY_BUFFER); {_IN_BAND}"),
}.items():
    _DISPATCH[_code[0]] = _fn
del _code, _fn


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


class _ReadProgress(io.RawIOBase):
    """A read-only file wrapper that advances a tqdm bar by the bytes read."""

    def __init__(self, f: BinaryIO, bar):
        self._f, self._bar = f, bar

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._bar.update(len(data))
        return data


_PROGRESS_MIN_BYTES = 32 * 2**20


def _magic_error(head: bytes, source: str) -> Optional[UnsafePickleError]:
    """A clear error for the files most often mistaken for a pickle."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        what = ("a zip archive, not a pickle. A checkpoint written by torch.save is a zip archive: load it with "
                "torch.load; a pose pickle is written by pickle.dump")
    elif head[:2] == b"\x1f\x8b":
        what = "gzip-compressed; decompress it first (gunzip)"
    elif head[:6] == b"\x93NUMPY":
        what = "a .npy file (numpy.save), not a pickle; load it with numpy.load"
    elif head.startswith(_TORCH_LEGACY_MAGIC):
        what = "a legacy torch checkpoint (torch.save before 1.6), not a pose pickle; load it with torch.load"
    else:
        return None
    return UnsafePickleError(f"Cannot load {source}: the file is {what}.")


def _stream_size(f) -> Optional[int]:
    try:
        start = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(start)
        return end - start
    except (AttributeError, OSError, ValueError):
        return None


def safe_load_pickle(
    path_or_fileobj: Union[str, os.PathLike, BinaryIO],
    *,
    max_depth: int = 32,
    max_expanded_bytes: Optional[int] = None,
    max_items: int = 2**27,
    max_key_bytes: int = 2**16,
) -> Any:
    """Loads a pickle that may only contain numeric numpy arrays, numpy dtypes/scalars and plain Python values.

    Allowed: dict, list, tuple, set, frozenset, OrderedDict, defaultdict (with a plain factory), None, bool, int,
    float, complex, str, bytes, bytearray, and numpy arrays / scalars / dtypes of bool, int, uint, float or complex
    kind. Pickles written by numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``), by Python 2 (latin-1 strings)
    and with any protocol 0-5 (buffers in-band) load, under either numpy. No global named in the file is ever
    called: the reader interprets the opcodes and builds each value from checked arguments.

    Args:
        path_or_fileobj: a path or a binary file object (read from its current position).
        max_depth: deepest nesting of containers.
        max_expanded_bytes: largest size the data may have with every shared reference expanded (each object
            counted each time it is used, about 16 bytes per object and 8 per reference plus its data); default
            ``max(64 MiB, 16 x the file size)``, so a file cannot stand for much more than it holds.
        max_items: most items in one container or elements in one array.
        max_key_bytes: largest dict key or set element (keys must be scalars or flat tuples of at most 16 scalars).

    Raises:
        UnsafePickleError (a PoseDataError and a ``pickle.UnpicklingError``) naming the file: a global outside the
        allow-list (named as ``module.name``), a dtype other than a plain numeric one or with forged state, array
        data whose length does not match its shape, persistent ids (torch checkpoints), out-of-band buffers, a
        limit exceeded, keys that share a hash (hash flooding), a length larger than the rest of the file; an
        empty, truncated or damaged file (one that is a zip, e.g. a torch checkpoint, is named as such).
    """
    limits = (max_depth, max_expanded_bytes, max_items, max_key_bytes)
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        path = os.fspath(path_or_fileobj)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size >= _PROGRESS_MIN_BYTES:
                from datasets.utils.logging import is_progress_bar_enabled
                from tqdm.auto import tqdm

                with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"Reading {os.path.basename(path)}", disable=not is_progress_bar_enabled()) as bar:
                    return _load(_ReadProgress(f, bar), path, size, *limits)
            return _load(f, path, size, *limits)
    source = getattr(path_or_fileobj, "name", None)
    source = str(source) if isinstance(source, (str, os.PathLike)) else "<file object>"
    f = path_or_fileobj
    size = _stream_size(f)
    start = f.tell() if size is not None else None
    result, consumed = _load(f, source, size, *limits, return_position=True)
    if start is not None:  # leave the file just past this pickle, like pickle.load
        f.seek(start + consumed)
    return result


def _load(f, source, size, max_depth, max_expanded_bytes, max_items, max_key_bytes, return_position=False):
    reader = _Reader(f, source, size, max_depth, max_expanded_bytes, max_items, max_key_bytes)
    reader.fill()
    if not reader.buf:
        raise reader.truncated()
    error = _magic_error(reader.buf[:16], source)
    if error is not None:
        raise error
    result = reader.load()
    return (result, reader.unread_position()) if return_position else result
