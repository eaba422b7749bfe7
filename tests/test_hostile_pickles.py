"""Hostile pose pickles: small files, written here, that try to crash, stall, exhaust or trick the loader.

Every case runs `load_pose_dataset` (or `safe_load_pickle`) in its own process with a memory limit and a
wall-clock timeout (`helpers.run_loader_isolated`), all cases of the module at once, a few processes at a time. Each
must end cleanly in a PoseDataError (UnsafePickleError where the unpickler refuses) whose message names the file and
the field or construct at fault: never a signal, a timeout, a MemoryError or another exception.
"""

import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
from helpers import run_loader_isolated

V = 17
P = pickle


# ---------------------------------------------------------------- a small pickle assembler


def s(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return P.BINUNICODE + struct.pack("<I", len(raw)) + raw


def b(raw: bytes) -> bytes:
    return (P.SHORT_BINBYTES + bytes([len(raw)]) if len(raw) < 256 else P.BINBYTES + struct.pack("<I", len(raw))) + raw


def i(n: int) -> bytes:
    if 0 <= n < 256:
        return P.BININT1 + bytes([n])
    if -(2**31) <= n < 2**31:
        return P.BININT + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return P.LONG1 + bytes([len(raw)]) + raw


def g(module: str, name: str) -> bytes:
    return P.GLOBAL + f"{module}\n{name}\n".encode()


def tup(*items: bytes) -> bytes:
    return P.MARK + b"".join(items) + P.TUPLE


def lst(*items: bytes) -> bytes:
    return P.EMPTY_LIST + (P.MARK + b"".join(items) + P.APPENDS if items else b"")


def dct(*pairs: bytes) -> bytes:
    return P.EMPTY_DICT + (P.MARK + b"".join(pairs) + P.SETITEMS if pairs else b"")


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + P.REDUCE


def put(k: int) -> bytes:  # high memo indices: fragments never clash with the pickler's own
    return P.LONG_BINPUT + struct.pack("<I", 100_000 + k)


def get(k: int) -> bytes:
    return P.LONG_BINGET + struct.pack("<I", 100_000 + k)


def program(body: bytes, proto: int = 2) -> bytes:
    return P.PROTO + bytes([proto]) + body + P.STOP


NONE, TRUE, FALSE = P.NONE, P.NEWTRUE, P.NEWFALSE


def dtype_state(byteorder="<", subarray=NONE, names=NONE, fields=NONE, elsize=-1, alignment=-1, flags=0, extra=b""):
    items = [i(3), s(byteorder), subarray, names, fields, i(elsize), i(alignment), i(flags)]
    return tup(*items, *([extra] if extra else []))


def dtype(typestr: str, state: bytes = None) -> bytes:
    """numpy.dtype(typestr) with a set-state; by default the honest state of a plain numeric dtype."""
    state = state if state is not None else dtype_state()
    return call(g("numpy", "dtype"), s(typestr), FALSE, TRUE) + state + P.BUILD


def reconstruct(shape: bytes, dt: bytes, raw: bytes) -> bytes:
    """numpy's _reconstruct(ndarray, (0,), b'b') + BUILD((1, shape, dtype, is_fortran, rawdata))."""
    head = call(g("numpy._core.multiarray", "_reconstruct"), g("numpy", "ndarray"), tup(i(0)), b(b"b"))
    return head + tup(i(1), shape, dt, FALSE, raw) + P.BUILD


def frombuffer(raw: bytes, dt: bytes, shape: bytes, order="C") -> bytes:
    return call(g("numpy._core.numeric", "_frombuffer"), b(raw), dt, shape, s(order))


def scalar(dt: bytes, raw: bytes) -> bytes:
    return call(g("numpy._core.multiarray", "scalar"), dt, raw)


# ---------------------------------------------------------------- pose files with one hostile part


class Raw:
    """Stands in a pose file for a pickle fragment written as it is (it must push exactly one value)."""

    def __init__(self, fragment: bytes):
        self.fragment = fragment


class _SplicingPickler(pickle._Pickler):
    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Raw):
            self.write(obj.fragment)
            return
        super().save(obj, save_persistent_id)


def dumps(data, protocol=2) -> bytes:
    f = io.BytesIO()
    _SplicingPickler(f, protocol).dump(data)
    return f.getvalue()


def pose_data(**fields):
    """A valid two-clip pose file; ``fields`` replace fields of clip 'c1'."""
    rng = np.random.default_rng(0)
    anns = []
    for k in range(2):
        anns.append({
            "frame_dir": f"c{k}",
            "label": k,
            "img_shape": (480, 640),
            "total_frames": 3,
            "keypoint": rng.uniform(1, 400, size=(1, 3, V, 2)).astype(np.float32),
            "keypoint_score": rng.uniform(0.3, 1, size=(1, 3, V)).astype(np.float32),
        })
    anns[1].update(fields)
    return {"split": {"train": ["c0", "c1"]}, "annotations": anns}


def pose(**fields) -> bytes:
    return dumps(pose_data(**fields))


def nested_shared(depth: int) -> bytes:
    """[[...], [...]] nested `depth` levels, every level the same list twice (2**depth leaves from a few bytes)."""
    out = P.EMPTY_LIST + put(0)
    for k in range(1, depth + 1):
        out += P.POP + lst(get(k - 1), get(k - 1)) + put(k)  # only the outermost level stays on the stack
    return out


def shared_tuple_key(depth: int) -> bytes:
    out = tup() + put(0)
    for k in range(1, depth + 1):
        out += P.POP + tup(get(k - 1), get(k - 1)) + put(k)
    return out


def keypoint_bomb(persons: int, frames: int) -> bytes:
    """keypoint as nested lists [M][T][V][2], every row a shared reference: M*T*V*2 floats from a few KB."""
    point = lst(P.BINFLOAT + struct.pack(">d", 5.0), P.BINFLOAT + struct.pack(">d", 5.0)) + put(0)
    frame = lst(*[get(0)] * V) + put(1)
    person = lst(*[get(1)] * frames) + put(2)
    return point + P.POP + frame + P.POP + person + P.POP + lst(*[get(2)] * persons)


def torch_like_zip() -> bytes:
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("archive/data.pkl", program(dct(s("weight"), tup(s("storage"), s("0")) + P.BINPERSID)))
        z.writestr("archive/data/0", b"\x00" * 64)
    return f.getvalue()


def opcode_replaced(raw: bytes, opname: str, by: bytes) -> bytes:
    """``raw`` with its first ``opname`` opcode (not a data byte that happens to match) replaced."""
    import pickletools

    pos = next(pos for op, _, pos in pickletools.genops(raw) if op.name == opname)
    return raw[:pos] + by + raw[pos + 1:]


def bit_flipped(seed: int) -> bytes:
    raw = bytearray(pickle.dumps(pose_data(), protocol=4))
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, len(raw), size=4):
        raw[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(raw)


# ---------------------------------------------------------------- the cases

# id -> (file bytes, call, kwargs, substrings the message must hold, expect UnsafePickleError, may load)
CASES = {}


def case(name, data, needles=(), call="load_pose_dataset", kwargs=None, unsafe=True, may_load=False):
    assert name not in CASES, name
    CASES[name] = (data, call, kwargs or {}, tuple(needles), unsafe, may_load)


SAFE = "safe_load_pickle"

# 1. Memory corruption through numpy's pickle helpers
forged_object = dtype("O8", dtype_state("|", flags=0))  # an object dtype that claims to hold no objects
case("forged_object_dtype_scalar", program(scalar(forged_object, b(b"A" * 8))), ["numpy.dtype", "O8"], SAFE)
case("object_dtype_scalar", program(scalar(dtype("O8", dtype_state("|", flags=63)), lst(i(1)))), ["O8"], SAFE)
case("object_dtype_reconstruct_raw", pose(keypoint=Raw(reconstruct(tup(i(2)), forged_object, b(b"A" * 16)))), ["O8"])
case("object_dtype_reconstruct_list",
     pose(keypoint=Raw(reconstruct(tup(i(2)), dtype("O8", dtype_state("|", flags=63)), lst(i(1), i(2))))), ["O8"])
case("object_dtype_frombuffer", pose(keypoint=Raw(frombuffer(b"A" * 16, forged_object, tup(i(2))))), ["O8"])
case("object_dtype_from_numpy", pose(keypoint=np.array([1, None], dtype=object)), ["numpy.dtype", "O8"])
field_far_away = dtype("V8", dtype_state("|", names=tup(s("x")), fields=dct(s("x"), tup(dtype("f8"), i(4096))),
                                         elsize=8, alignment=1, flags=16))
case("structured_dtype_field_offset", pose(keypoint=Raw(frombuffer(b"\x00" * 8, field_far_away, tup(i(1))))), ["V8"])
case("raw_ndarray_shape", pose(keypoint=Raw(call(g("numpy", "ndarray"), tup(i(1), i(3), i(V), i(2))))),
     ["numpy.ndarray", "uninitialised"])
for name, arr in {
    "unicode": np.array(["ab", "c"]), "bytes": np.array([b"ab"]), "void": np.zeros(2, "V4"),
    "datetime": np.array(["2020-01-01"], "M8[s]"), "timedelta": np.array([1], "m8[s]"),
    "structured": np.zeros(2, [("x", "f4"), ("y", "f4")]), "structured_subarray": np.zeros(2, [("x", "f4", (2,))]),
}.items():
    for proto in (2, 5):
        case(f"dtype_{name}_p{proto}", dumps(pose_data(keypoint=arr), protocol=proto), ["numpy.dtype"])
case("scalar_wrong_size", program(scalar(dtype("f8"), b(b"abc"))), ["numpy scalar", "8 bytes", "gives 3"], SAFE)
case("scalar_bad_dtype", program(scalar(s("f8"), b(b"A" * 8))), ["numpy scalar", "dtype"], SAFE)
for name, state in {
    "elsize": dtype_state(elsize=100), "alignment": dtype_state(alignment=64), "flags": dtype_state(flags=63),
    "byteorder": dtype_state("x"), "names": dtype_state(names=tup(s("a"))),
    "fields": dtype_state(fields=dct(s("a"), tup(dtype("f4"), i(0)))),
    "subarray": dtype_state(subarray=tup(dtype("f4"), tup(i(2)))), "metadata": dtype_state(extra=dct(s("a"), i(1))),
}.items():
    case(f"forged_dtype_state_{name}", program(dtype("f4", state)), ["numpy.dtype", "state"], SAFE)
case("array_length_mismatch", pose(keypoint=Raw(reconstruct(tup(i(1), i(3), i(V), i(2)), dtype("f4"), b(b"\0" * 4)))),
     ["numpy array", "408 bytes", "gives 4"])
case("frombuffer_length_mismatch", pose(keypoint=Raw(frombuffer(b"\0" * 4, dtype("f4"), tup(i(1), i(3), i(V), i(2))))),
     ["_frombuffer", "408 bytes", "gives 4"])
case("array_state_wrong_types", pose(keypoint=Raw(reconstruct(s("shape"), dtype("f4"), b(b"")))),
     ["numpy array", "shape"])
case("array_shape_too_big", pose(keypoint=Raw(reconstruct(tup(i(0), i(2**62)), dtype("f4"), b(b"")))), ["shape"])
case("build_on_list", program(P.EMPTY_LIST + P.EMPTY_DICT + P.BUILD), ["BUILD"], SAFE)
case("build_twice", program(dtype("f4") + dtype_state() + P.BUILD), ["BUILD"], SAFE)

# 2. Tiny files that stall or exhaust the machine
case("repr_bomb_split", dumps({"split": Raw(nested_shared(30)), "annotations": []}), ["expand"])
case("deep_nesting_appends", dumps({"split": Raw(P.EMPTY_LIST * 100_000 + P.APPEND * 99_999), "annotations": []}),
     ["nested", "max_depth"])
case("deep_nesting_marks", program(P.MARK * 100_000 + P.LIST * 100_000), ["MARK"], SAFE)
punycode = call(g("_codecs", "encode"), s("".join(chr(0x80 + k % 5000) for k in range(16_000))), s("punycode"))
case("codec_punycode", pose(extra=Raw(punycode)), ["_codecs.encode", "punycode"])
for codec in ("utf-8", "rot13", "idna", "unicode_escape", "utf-16"):
    case(f"codec_{codec}", program(call(g("_codecs", "encode"), s("abc"), s(codec))), ["_codecs.encode", codec], SAFE)
case("exponential_tuple_key", pose(extra=Raw(dct(shared_tuple_key(60), i(1)))), ["expand"])
case("nested_tuple_key", pose(extra=Raw(dct(tup(tup(i(1)), i(2)), i(1)))), ["key", "flat tuples"])
case("list_key", program(dct(lst(), i(1))), ["key"], SAFE)
# ints that differ by multiples of 2**61 - 1, tuples of them and complex numbers (a - 1000003 k, k) all share one
# hash: building a set or dict of 60000 of them takes minutes.
flood = [i(k * (2**61 - 1)) for k in range(1, 60_000)]
case("hash_flood_int_set", pose(extra=Raw(P.EMPTY_SET + P.MARK + b"".join(flood) + P.ADDITEMS)), ["share one hash"])
case("hash_flood_int_dict", pose(extra=Raw(P.EMPTY_DICT + P.MARK + b"".join(k + NONE for k in flood) + P.SETITEMS)),
     ["share one hash"])
case("hash_flood_tuple_dict", pose(extra=Raw(P.EMPTY_DICT + P.MARK + b"".join(k + i(0) + P.TUPLE2 + NONE for k in flood)
                                             + P.SETITEMS)), ["share one hash"])
flood_complex = b"".join(call(g("builtins", "complex"), P.BINFLOAT + struct.pack(">d", 1000003.0 * k),
                              P.BINFLOAT + struct.pack(">d", -float(k))) for k in range(1, 60_000))
case("hash_flood_complex_set", pose(extra=Raw(P.EMPTY_SET + P.MARK + flood_complex + P.ADDITEMS)), ["share one hash"])
case("hash_flood_frozenset", program(P.MARK + b"".join(flood) + P.FROZENSET), ["share one hash"], SAFE)
for module in ("builtins", "__builtin__"):  # Python 3 and Python 2 names
    case(f"bytes_10gb_{module}", program(call(g(module, "bytes"), i(10**10))), ["builtins.bytes"], SAFE)
    case(f"bytearray_10gb_{module}", program(call(g(module, "bytearray"), i(10**10))), ["builtins.bytearray"], SAFE)
for name, head in {
    "binbytes8": P.BINBYTES8 + struct.pack("<Q", 10**10), "binunicode8": P.BINUNICODE8 + struct.pack("<Q", 10**10),
    "bytearray8": P.BYTEARRAY8 + struct.pack("<Q", 10**10), "binbytes": P.BINBYTES + struct.pack("<I", 2**32 - 1),
    "binunicode": P.BINUNICODE + struct.pack("<I", 2**32 - 1), "binstring": P.BINSTRING + struct.pack("<i", 2**31 - 1),
    "long4": P.LONG4 + struct.pack("<i", 2**31 - 1),
}.items():
    case(f"declared_size_{name}", P.PROTO + b"\x05" + head + b"abc", ["declares", "bytes of the file are left"], SAFE)
case("declared_size_frame", P.PROTO + b"\x05" + P.FRAME + struct.pack("<Q", 10**10) + P.NONE + P.STOP, ["frame"], SAFE)
case("nested_list_keypoint_bomb", pose(keypoint=Raw(keypoint_bomb(2000, 2000))), ["expand"])
case("memo_bomb_extra_field", pose(extra=Raw(nested_shared(60))), ["expand"])
case("shared_then_modified", program(P.EMPTY_LIST + put(0) + lst(*[get(0)] * 100) + P.POP + get(0) + P.MARK
                                     + get(0) * 100 + P.APPENDS), ["after it was stored"], SAFE)
case("self_reference", program(P.EMPTY_LIST + put(0) + get(0) + P.APPEND), ["itself"], SAFE)
case("decimal_int_5000_digits", b"I" + b"9" * 5000 + b"\n.", ["digit"], SAFE)
case("max_items", program(lst(*[i(1)] * 100)), ["max_items"], SAFE, kwargs={"max_items": 10})

# 3. The error contract: every failure is a clear error naming the file
case("empty_file", b"", ["empty"])
case("zip_renamed_pkl", torch_like_zip(), ["zip", "torch"])
case("persistent_id", program(tup(s("storage"), s("0")) + P.BINPERSID), ["persistent id", "torch"])
case("legacy_torch_magic", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + b"\x80\x02K\x01.", ["torch"])
case("gzip", b"\x1f\x8b\x08\x00" + b"\x00" * 20, ["gzip"])
case("truncated", pickle.dumps(pose_data(), protocol=4)[:1500], ["truncated"])
case("truncated_in_array", pickle.dumps(pose_data(), protocol=2)[:300], ["truncated"])
case("bitflip_invalid_utf8", pickle.dumps(pose_data(), protocol=4).replace(b"c1", b"\xff1"), ["UnicodeDecodeError"])
case("bitflip_unknown_opcode", opcode_replaced(pickle.dumps(pose_data(), protocol=2), "EMPTY_LIST", b"\xff"),
     ["unknown opcode"])
for seed in range(16):
    case(f"random_bitflips_{seed}", bit_flipped(seed), unsafe=False, may_load=True)
case("protocol0_global_not_utf8", b"c\xffnumpy\ndtype\n.", ["UTF-8"], SAFE)
case("protocol0_bad_string_escape", b"S'\\x'\np0\n.", ["damaged"], SAFE)
case("protocol0_unquoted_string", b"Sabc\np0\n.", ["quoted"], SAFE)
case("protocol0_bad_unicode_escape", b"V\\u12\np0\n.", ["UnicodeDecodeError"], SAFE)
case("stop_on_empty_stack", b".", ["empty stack"], SAFE)
case("memo_get_missing", program(P.BINGET + b"\x07"), ["memo"], SAFE)
case("newobj", program(g("builtins", "set") + tup() + P.NEWOBJ), ["NEWOBJ", "builtins.set"], SAFE)
case("inst", b"(i__builtin__\nset\np0\n.", ["INST"], SAFE)
case("ext", program(P.EXT1 + b"\x01"), ["extension"], SAFE)
case("out_of_band_buffer", pickle.dumps(np.arange(3.0), protocol=5, buffer_callback=lambda buf: False),
     ["out-of-band"], SAFE)
case("global_used_as_value", pose(extra=Raw(g("numpy", "dtype"))), ["numpy.dtype", "only data"])
case("code_execution", program(call(g("posix", "system"), s("echo hacked"))), ["posix.system"], SAFE)
case("label_10e30", pose(label=10**30), ["'c1'", "label", "64-bit"], unsafe=False)
case("label_huge_without_label_map", pose(label=10**9), ["'c1'", "label", "label_map"], unsafe=False)
case("split_member_list", dumps({**pose_data(), "split": {"train": ["c0", ["c1"]]}}), ["split", "entry #1"],
     unsafe=False)
case("split_name_not_text", dumps({**pose_data(), "split": {("a",): ["c0"]}}), ["split", "strings"], unsafe=False)
missing_label = pose_data()
del missing_label["annotations"][1]["label"]
missing_label["annotations"][1]["k" * 60_000] = 1  # the message lists the fields present, shortened
case("missing_field_long_key", dumps(missing_label), ["'c1'", "label", "present"], unsafe=False)
case("img_shape_10e12", pose(img_shape=(10**12, 640)), ["'c1'", "img_shape"], unsafe=False)
case("lone_surrogate_frame_dir", pose(frame_dir="c\ud800"), ["annotation #1", "frame_dir", "surrogate"], unsafe=False)

# 4. Validation gaps
case("coordinate_3e38", pose(keypoint=np.full((1, 3, V, 2), 3e38, np.float32)), ["'c1'", "keypoint", "magnitude"],
     unsafe=False)
case("bool_keypoint", pose(keypoint=np.ones((1, 3, V, 2), bool)), ["'c1'", "keypoint", "bool"], unsafe=False)
case("complex_keypoint", pose(keypoint=np.ones((1, 3, V, 2), np.complex64)), ["'c1'", "keypoint", "complex"],
     unsafe=False)
case("string_list_keypoint", pose(keypoint=[[[["1.5", "2"]] * V] * 3]), ["'c1'", "keypoint"], unsafe=False)
case("bool_score", pose(keypoint_score=np.ones((1, 3, V), bool)), ["'c1'", "keypoint_score", "bool"], unsafe=False)
case("img_shape_string", pose(img_shape="48"), ["'c1'", "img_shape", "'48'"], unsafe=False)
case("img_shape_bools", pose(img_shape=(True, True)), ["'c1'", "img_shape"], unsafe=False)
case("original_shape_negative", pose(original_shape=(-1, 5)), ["'c1'", "original_shape"], unsafe=False)
case("num_person_negative", pose(num_person=-1), ["'c1'", "num_person", "-1"], unsafe=False)
case("num_person_inconsistent", pose(num_person=3), ["'c1'", "num_person", "3"], unsafe=False)
case("joints_18_with_num_joints_17", pose(keypoint=np.ones((1, 3, 18, 2), np.float32)), ["'c1'", "18 joints"],
     unsafe=False)

# A clean file loads in the same harness (its limits leave room for a real load).
case("control_valid_file", pickle.dumps(pose_data(), protocol=4), may_load=True, unsafe=False)


@pytest.fixture(scope="module")
def isolated_runs(tmp_path_factory):
    """Every case, each in its own process; run once for the module (all at once is what keeps the suite fast)."""
    folder = tmp_path_factory.mktemp("hostile")
    jobs, paths = [], {}
    for name, (data, call, kwargs, *_rest) in CASES.items():
        path = folder / f"{name}.pkl"
        path.write_bytes(data)
        paths[name] = str(path)
        if call == "load_pose_dataset":
            kwargs = {"cache_dir": str(folder / f"cache_{name}"), **kwargs}
        jobs.append((call, path, kwargs))
    runs = run_loader_isolated(jobs)
    return {name: run for name, run in zip(CASES, runs)}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file_fails_cleanly(isolated_runs, name):
    _, _, _, needles, unsafe, may_load = CASES[name]
    run = isolated_runs[name]
    assert not run.timed_out, run.describe()
    assert run.result is not None and run.returncode == 0, run.describe()  # no signal, no crash
    result = run.result
    if result["ok"]:
        assert may_load, run.describe()
        return
    assert result["pose_error"], run.describe()  # a PoseDataError: not MemoryError, RecursionError, numpy's, ...
    assert result["type"] in ("PoseDataError", "UnsafePickleError"), run.describe()
    if unsafe:
        assert result["type"] == "UnsafePickleError" and result["unpickling_error"], run.describe()
    message = result["message"]
    assert run.path in message, run.describe()  # names the file
    for needle in needles:
        assert needle in message, (needle, run.describe())
    assert len(message) < 2000, run.describe()  # bounded: no value formatted whole


def test_control_file_loads(isolated_runs):
    result = isolated_runs["control_valid_file"].result
    assert result == {"ok": True, "rows": {"train": 2}}, isolated_runs["control_valid_file"].describe()


def test_harness_reports_crashes_and_hangs_per_case(tmp_path):
    """A case that kills its worker or hangs is reported as such, on that case alone, and the cases after it run."""
    files = {"abort": program(call(g("os", "abort"))), "sleep": program(call(g("time", "sleep"), i(60))),
             "valid": CASES["control_valid_file"][0]}
    for name, data in files.items():
        files[name] = tmp_path / f"{name}.pkl"
        files[name].write_bytes(data)
    # unrestricted pickle.load runs what the files name: os.abort(), time.sleep(60)
    crash, hang, after = run_loader_isolated(
        [("pickle.load", files["abort"], None), ("pickle.load", files["sleep"], None),
         ("safe_load_pickle", files["valid"], None)], timeout=2.0, jobs=1)
    assert crash.result is None and not crash.timed_out and crash.returncode < 0, crash.describe()  # a signal
    assert hang.result is None and hang.timed_out, hang.describe()
    assert after.result == {"ok": True, "type": "dict"}, after.describe()
