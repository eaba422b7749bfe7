import builtins
import codecs
import collections
import io
import os
import pickle
import time
import warnings

import numpy as np
import pytest

from modeling_skeletonclip import pose_dataset, safe_pickle
from modeling_skeletonclip.pose_dataset import (
    PoseDataError,
    UnsafePickleError,
    load_pose_dataset,
    pose_features,
    safe_load_pickle,
)

V = 17


def make_ann(frame_dir, label=0, m=1, t=5, c=2, seed=0, dtype=np.float32, score=True, **extra):
    rng = np.random.default_rng(seed)
    ann = {
        "frame_dir": frame_dir,
        "label": label,
        "img_shape": (480, 640),
        "total_frames": t,
        "keypoint": (rng.uniform(1, 400, size=(m, t, V, c))).astype(dtype),
    }
    if score:
        ann["keypoint_score"] = rng.uniform(0.3, 1.0, size=(m, t, V)).astype(dtype)
    ann.update(extra)
    return ann


def make_data(n_train=4, n_val=2, num_classes=3, **kw):
    anns = [make_ann(f"clip{i}", label=i % num_classes, m=1 + i % 2, t=3 + i, seed=i, **kw)
            for i in range(n_train + n_val)]
    return {
        "split": {"xsub_train": [a["frame_dir"] for a in anns[:n_train]],
                  "xsub_test": [a["frame_dir"] for a in anns[n_train:]]},
        "annotations": anns,
    }


def dump(data, path, protocol=4):
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return str(path)


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


# ---------------------------------------------------------------- safe_load_pickle


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_safe_load_roundtrips_numpy_and_containers(tmp_path, protocol):
    obj = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "h": np.ones((2, 2), np.float16),
        "t": np.arange(6).reshape(2, 3).T,  # non-contiguous
        "s": np.int64(7),
        "f": np.float32(1.5),
        "od": collections.OrderedDict(x=1),
        "set": {1, 2},
        "fs": frozenset({3}),
        "tuple": (1, "x", None, 2.5, True, b"raw"),
        "complex": 1 + 2j,
        "keys": {2**64 + 7: "big int", (1, "a", None): "tuple", 2.5: "float", b"k": "bytes", None: "none"},
        "numbers": set(range(-1000, 1000)),
    }
    path = dump(obj, tmp_path / "ok.pkl", protocol)
    out = safe_load_pickle(path)
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(out[k], v)
            assert out[k].dtype == v.dtype
        else:
            assert out[k] == v
    with open(path, "rb") as f:  # file objects work too
        assert safe_load_pickle(f)["s"] == 7


def test_safe_load_numpy1_pickle(tmp_path):
    """A pickle written by numpy 1 names numpy.core.multiarray; it loads without numpy's deprecation warning."""
    raw = pickle.dumps({"kp": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.int32(4)}, protocol=2)
    assert b"numpy._core.multiarray" in raw  # protocol 2 writes globals as text lines: safe to patch
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy._core" not in raw
    path = tmp_path / "np1.pkl"
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = safe_load_pickle(str(path))
    np.testing.assert_array_equal(out["kp"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert out["n"] == 4


class _SystemPayload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _OpenPayload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (builtins.open, (self.target, "w"))


class _EvalPayload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (builtins.eval, (f"open({self.target!r}, 'w')",))


@pytest.mark.parametrize("payload,glob", [
    (_SystemPayload, f"{os.system.__module__}.system"),
    (_OpenPayload, "io.open"),
    (_EvalPayload, "builtins.eval"),
])
def test_safe_load_refuses_code_execution(tmp_path, payload, glob):
    target = tmp_path / "pwned"
    # the payload hides inside an otherwise valid pose file
    data = make_data()
    data["annotations"][0]["evil"] = payload(str(target))
    path = dump(data, tmp_path / "evil.pkl")
    with pytest.raises(UnsafePickleError) as e:
        safe_load_pickle(path)
    msg = str(e.value)
    assert glob in msg, msg
    assert path in msg
    assert isinstance(e.value, pickle.UnpicklingError)
    assert not target.exists()
    # the loader refuses it too, before building anything
    with pytest.raises(UnsafePickleError):
        load_pose_dataset(path, cache_dir=str(tmp_path / "cache"))
    assert not target.exists()
    # and an unrestricted load really would have run it (the test payload is real)
    if payload is _OpenPayload:
        with open(path, "rb") as f:
            pickle.load(f)
        assert target.exists()


def test_safe_load_refuses_arbitrary_classes(tmp_path):
    path = dump({"x": collections.Counter("ab")}, tmp_path / "counter.pkl")
    with pytest.raises(UnsafePickleError, match="collections.Counter"):
        safe_load_pickle(path)


def test_progress_bar_path(tmp_path, monkeypatch):
    # reading (safe_pickle) and hashing for the cache key (pose_dataset) both show a bar on large files
    monkeypatch.setattr(safe_pickle, "_PROGRESS_MIN_BYTES", 0)
    monkeypatch.setattr(pose_dataset, "_PROGRESS_MIN_BYTES", 0)
    data = make_data()
    path = dump(data, tmp_path / "p.pkl")
    out = safe_load_pickle(path)
    np.testing.assert_array_equal(out["annotations"][3]["keypoint"], data["annotations"][3]["keypoint"])
    ds = load_pose_dataset(path, cache_dir=str(tmp_path / "cache"))["xsub_train"].with_format("numpy")
    np.testing.assert_array_equal(ds[3]["keypoint"].reshape(data["annotations"][3]["keypoint"].shape),
                                  data["annotations"][3]["keypoint"])


# ---------------------------------------------------------------- load_pose_dataset: schema and conversion


def test_schema_and_roundtrip(tmp_path, cache):
    data = make_data(dtype=np.float16)
    data["annotations"][0]["num_person_raw"] = 3  # extra keys are ignored
    data["annotations"][1]["original_shape"] = (1080, 1920)
    path = dump(data, tmp_path / "d.pkl")
    dd = load_pose_dataset(path, label_map=["a", "b", "c"], cache_dir=cache)
    assert list(dd) == ["xsub_train", "xsub_test"]
    assert dd["xsub_train"].num_rows == 4 and dd["xsub_test"].num_rows == 2
    from datasets import Array2D, Array3D, ClassLabel, List, Value

    feats = dd["xsub_train"].features
    assert feats == pose_features(["a", "b", "c"])
    assert feats["keypoint"] == Array3D(shape=(None, V, 2), dtype="float32")
    assert feats["keypoint_score"] == Array2D(shape=(None, V), dtype="float32")
    assert feats["img_shape"] == List(Value("int32"), length=2)
    assert feats["label"] == ClassLabel(names=["a", "b", "c"])
    assert feats["total_frames"] == Value("int32") and feats["num_person"] == Value("int32")

    ds = dd["xsub_train"].with_format("numpy")
    rows = ds.__getitems__([0, 1, 2, 3])
    for i, row in enumerate(rows):
        ann = data["annotations"][i]
        m, t = ann["keypoint"].shape[:2]
        assert row["frame_dir"] == ann["frame_dir"] and row["label"] == ann["label"]
        assert row["num_person"] == m and row["total_frames"] == t
        assert row["keypoint"].dtype == np.float32 and row["keypoint"].shape == (m * t, V, 2)
        np.testing.assert_array_equal(row["keypoint"].reshape(m, t, V, 2), ann["keypoint"].astype(np.float32))
        np.testing.assert_array_equal(row["keypoint_score"].reshape(m, t, V), ann["keypoint_score"].astype(np.float32))
        assert list(row["img_shape"]) == [480, 640]
    assert list(rows[0]["original_shape"]) == [480, 640]  # defaults to img_shape
    assert list(rows[1]["original_shape"]) == [1080, 1920]


def test_label_maps_and_split_selection(tmp_path, cache):
    path = dump(make_data(num_classes=3), tmp_path / "d.pkl")
    dd = load_pose_dataset(path, cache_dir=cache)
    assert dd["xsub_train"].features["label"].names == ["class_0", "class_1", "class_2"]
    lm = tmp_path / "labels.txt"
    lm.write_text("drink water\neat meal\nbrush teeth\nextra class\n")
    dd = load_pose_dataset(path, label_map=str(lm), splits=["xsub_test"], cache_dir=cache)
    assert list(dd) == ["xsub_test"]
    assert dd["xsub_test"].features["label"].names[:2] == ["drink water", "eat meal"]
    assert dd["xsub_test"].features["label"].int2str(int(dd["xsub_test"][0]["label"])) == "eat meal"  # clip4: 4 % 3
    with pytest.raises(PoseDataError, match="xsub_val"):
        load_pose_dataset(path, splits=["xsub_val"], cache_dir=cache)


def test_ntu_label_map(tmp_path, cache):
    from modeling_skeletonclip.resources import packaged_data_file

    lm = packaged_data_file("data/label_maps/ntu60.txt")
    path = dump(make_data(num_classes=60), tmp_path / "d.pkl")
    names = load_pose_dataset(path, label_map=lm, cache_dir=cache)["xsub_train"].features["label"].names
    assert len(names) == 60 and names[0] == "drink water"


def test_nan_missing_scores_and_total_frames(tmp_path, cache):
    data = make_data()
    a0 = data["annotations"][0]
    a0["keypoint"][0, 1, 3, 0] = np.nan
    a0["keypoint"][0, 2, 4, :] = np.nan
    a0["total_frames"] = 999  # disagrees with keypoint: keypoint's T wins
    a1 = data["annotations"][1]
    del a1["keypoint_score"]
    a1["keypoint"][0, 0, 5] = 0.0  # a missing joint
    path = dump(data, tmp_path / "d.pkl")
    ds = load_pose_dataset(path, cache_dir=cache)["xsub_train"].with_format("numpy")
    r0, r1 = ds[0], ds[1]
    assert r0["total_frames"] == 3
    kp, sc = r0["keypoint"].reshape(1, 3, V, 2), r0["keypoint_score"].reshape(1, 3, V)
    assert np.isfinite(kp).all()
    assert (kp[0, 1, 3] == 0).all() and sc[0, 1, 3] == 0
    assert (kp[0, 2, 4] == 0).all() and sc[0, 2, 4] == 0
    assert sc[0, 1, 2] > 0  # neighbours untouched
    sc1 = r1["keypoint_score"].reshape(2, 4, V)
    assert sc1[0, 0, 5] == 0 and (np.delete(sc1.reshape(-1), 5) == 1).all()


def test_3d_keypoints(tmp_path, cache):
    anns = [make_ann(f"s{i}", label=i % 2, m=2, t=4, c=3, seed=i, score=False) for i in range(3)]
    for a in anns:
        del a["img_shape"]  # NTU 3D pickles carry no image size
        a["keypoint"][1] = 0.0  # second person absent (zero padding)
    data = {"split": {"xsub_train": ["s0", "s1"], "xsub_val": ["s2"]}, "annotations": anns}
    path = dump(data, tmp_path / "3d.pkl")
    with pytest.raises(PoseDataError) as e:
        load_pose_dataset(path, cache_dir=cache)
    assert "3D" in str(e.value) and "keypoint_3d='project_xy'" in str(e.value) and "'s0'" in str(e.value)
    ds = load_pose_dataset(path, keypoint_3d="project_xy", cache_dir=cache)["xsub_train"].with_format("numpy")
    r = ds[0]
    kp = r["keypoint"].reshape(2, 4, V, 2)
    np.testing.assert_array_equal(kp, anns[0]["keypoint"][..., :2])
    sc = r["keypoint_score"].reshape(2, 4, V)
    assert (sc[0] == 1).all() and (sc[1] == 0).all()
    h, w = r["img_shape"]
    assert h >= anns[0]["keypoint"][..., 1].max() and w >= anns[0]["keypoint"][..., 0].max()


# ---------------------------------------------------------------- validation errors


def _mutations():
    def drop(key):
        def f(d):
            del d["annotations"][1][key]
        return f

    def setf(key, value):
        def f(d):
            d["annotations"][1][key] = value
        return f

    def shape(kp_shape=None, sc_shape=None):
        def f(d):
            a = d["annotations"][1]
            if kp_shape is not None:
                a["keypoint"] = np.ones(kp_shape, np.float32)
            if sc_shape is not None:
                a["keypoint_score"] = np.ones(sc_shape, np.float32)
        return f

    def dup(d):
        d["annotations"][2]["frame_dir"] = "clip1"

    def ghost(d):
        d["split"]["xsub_test"].append("nowhere")

    def nondict(d):
        d["annotations"][1] = ["not", "a", "dict"]

    def no_fd(d):
        del d["annotations"][1]["frame_dir"]

    return [
        ("missing label", drop("label"), ["'clip1'", "label"]),
        ("missing keypoint", drop("keypoint"), ["'clip1'", "keypoint"]),
        ("missing img_shape", drop("img_shape"), ["'clip1'", "img_shape"]),
        ("missing frame_dir", no_fd, ["annotation #1", "frame_dir"]),
        ("score shape", shape(sc_shape=(2, 4, V - 1)), ["'clip1'", "keypoint_score", "(2, 4, 16)"]),
        ("rank", shape(kp_shape=(4, V, 2), sc_shape=(4, V)), ["'clip1'", "keypoint", "rank 4"]),
        ("joints", shape(kp_shape=(2, 4, 25, 2), sc_shape=(2, 4, 25)), ["'clip1'", "keypoint", "25 joints"]),
        ("zero frames", shape(kp_shape=(2, 0, V, 2), sc_shape=(2, 0, V)), ["'clip1'", "keypoint", "zero frames"]),
        ("coords", shape(kp_shape=(2, 4, V, 4), sc_shape=(2, 4, V)), ["'clip1'", "keypoint"]),
        ("label range", setf("label", 7), ["'clip1'", "label", "7"]),
        ("negative label", setf("label", -1), ["'clip1'", "label", "-1"]),
        ("float label", setf("label", "3"), ["'clip1'", "label"]),
        ("img_shape", setf("img_shape", (480,)), ["'clip1'", "img_shape"]),
        ("duplicate", dup, ["'clip1'", "frame_dir", "duplicated"]),
        ("split ghost", ghost, ["'nowhere'", "split", "xsub_test"]),
        ("non-dict", nondict, ["annotation #1", "dict"]),
    ]


@pytest.mark.parametrize("name,mutate,needles", _mutations(), ids=[m[0] for m in _mutations()])
def test_validation_errors(tmp_path, cache, name, mutate, needles):
    data = make_data()
    mutate(data)
    path = dump(data, tmp_path / "bad.pkl")
    with pytest.raises(PoseDataError) as e:
        load_pose_dataset(path, label_map=["a", "b", "c"], cache_dir=cache)
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert path in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)


@pytest.mark.parametrize("data,needle", [
    ({"annotations": []}, "'split'"),
    ({"split": {"a": []}}, "'annotations'"),
    ([1, 2], "top level"),
])
def test_top_level_errors(tmp_path, cache, data, needle):
    path = dump(data, tmp_path / "bad.pkl")
    with pytest.raises(PoseDataError, match=needle):
        load_pose_dataset(path, cache_dir=cache)


def test_one_based_labels(tmp_path, cache):
    data = make_data(n_train=4, n_val=2, num_classes=3)
    for a in data["annotations"]:
        a["label"] += 1  # 1..3 with 3 classes
    path = dump(data, tmp_path / "d.pkl")
    with pytest.raises(PoseDataError) as e:
        load_pose_dataset(path, label_map=["a", "b", "c"], cache_dir=cache)
    assert "1-based" in str(e.value) and "label_offset=-1" in str(e.value)
    ds = load_pose_dataset(path, label_map=["a", "b", "c"], label_offset=-1, cache_dir=cache)["xsub_train"]
    assert ds["label"] == [0, 1, 2, 0]


# ---------------------------------------------------------------- cache


def test_second_load_hits_the_cache(tmp_path, cache, monkeypatch):
    data = make_data(n_train=40, n_val=10)
    path = dump(data, tmp_path / "d.pkl")
    calls = []
    real = pose_dataset.safe_load_pickle
    monkeypatch.setattr(pose_dataset, "safe_load_pickle", lambda p: calls.append(p) or real(p))

    t0 = time.perf_counter()
    first = load_pose_dataset(path, cache_dir=cache)
    t1 = time.perf_counter()
    second = load_pose_dataset(path, cache_dir=cache)
    t2 = time.perf_counter()
    assert len(calls) == 1  # the pickle was not read again
    assert (t2 - t1) < (t1 - t0)
    for split in first:
        assert first[split].cache_files == second[split].cache_files
        assert first[split]["frame_dir"] == second[split]["frame_dir"]
    # a subset reuses the same per-split cache
    load_pose_dataset(path, splits=["xsub_test"], cache_dir=cache)
    assert len(calls) == 1
    # different options or a changed file rebuild
    load_pose_dataset(path, label_map=["a", "b", "c"], cache_dir=cache)
    assert len(calls) == 2
    data["annotations"][0]["label"] = 2
    dump(data, path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = load_pose_dataset(path, cache_dir=cache)
    assert len(calls) == 3
    assert again["xsub_train"][0]["label"] == 2


def test_arrow_cache_removed_is_rebuilt(tmp_path, cache):
    import shutil

    path = dump(make_data(), tmp_path / "d.pkl")
    first = load_pose_dataset(path, cache_dir=cache)
    n = first["xsub_train"].num_rows
    del first
    shutil.rmtree(os.path.join(cache, "generator"))
    again = load_pose_dataset(path, cache_dir=cache)
    assert again["xsub_train"].num_rows == n


def test_damaged_arrow_cache_is_rebuilt(tmp_path, cache, caplog):
    path = dump(make_data(), tmp_path / "d.pkl")
    first = load_pose_dataset(path, cache_dir=cache)
    arrow = first["xsub_train"].cache_files[0]["filename"]
    expected = first["xsub_train"].with_format("numpy")[3]["keypoint"]
    del first
    with open(arrow, "r+b") as f:  # an interrupted copy or a full disk
        f.truncate(os.path.getsize(arrow) // 2)
    with caplog.at_level("WARNING", logger="modeling_skeletonclip.pose_dataset"):
        again = load_pose_dataset(path, cache_dir=cache)
    assert "damaged" in caplog.text and "xsub_train" in caplog.text and path in caplog.text
    assert again["xsub_train"].num_rows == 4
    np.testing.assert_array_equal(again["xsub_train"].with_format("numpy")[3]["keypoint"], expected)


def test_cache_key_is_the_content(tmp_path, cache):
    """An edit that keeps the size and the modification time is not served from the stale cache."""
    data = make_data()
    path = dump(data, tmp_path / "d.pkl")
    assert load_pose_dataset(path, cache_dir=cache)["xsub_train"][0]["label"] == 0
    st = os.stat(path)
    data["annotations"][0]["label"] = 2  # same pickled size
    dump(data, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    assert load_pose_dataset(path, cache_dir=cache)["xsub_train"][0]["label"] == 2
    # and a copy of a file elsewhere is the same dataset (the key does not depend on the path)
    copy = tmp_path / "copy.pkl"
    copy.write_bytes(open(path, "rb").read())
    assert load_pose_dataset(str(copy), cache_dir=cache)["xsub_train"][0]["label"] == 2


# ---------------------------------------------------------------- what the loader admits: pickles of every kind


def _variant(ann, dtype, fortran, label_kind):
    out = dict(ann)
    kp, score = ann["keypoint"].astype(dtype), ann["keypoint_score"].astype(dtype)
    out["keypoint"] = np.asfortranarray(kp) if fortran else kp
    out["keypoint_score"] = np.asfortranarray(score) if fortran else score
    out["label"] = np.int64(ann["label"]) if label_kind == "numpy" else int(ann["label"])
    return out


def _assert_same_rows(dd, other):
    assert list(dd) == list(other)
    for name in dd:
        rows, others = list(dd[name].with_format("numpy")), list(other[name].with_format("numpy"))
        assert len(rows) == len(others)
        for row, expected in zip(rows, others):
            assert row.keys() == expected.keys()
            for field in row:
                np.testing.assert_array_equal(row[field], expected[field], err_msg=field)


def _assert_rows(dd, data):
    """The rows are the annotations' values, converted as the loader documents it (float32, person-major)."""
    by_dir = {a["frame_dir"]: a for a in data["annotations"]}
    for name, members in data["split"].items():
        rows = dd[name].with_format("numpy")
        assert list(rows["frame_dir"]) == list(members)
        for row in rows:
            ann = by_dir[row["frame_dir"]]
            kp = np.asarray(ann["keypoint"]).astype(np.float32)
            m, t = kp.shape[:2]
            assert row["label"] == int(ann["label"]) and row["num_person"] == m and row["total_frames"] == t
            np.testing.assert_array_equal(row["keypoint"], kp.reshape(m * t, V, 2))
            np.testing.assert_array_equal(row["keypoint_score"],
                                          np.asarray(ann["keypoint_score"]).astype(np.float32).reshape(m * t, V))
            assert list(row["img_shape"]) == list(ann["img_shape"])


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f2", ">f2", "<f8", ">f8"])
def test_pickles_of_every_protocol_and_dtype_load(tmp_path, cache, protocol, dtype):
    data = make_data()
    data["annotations"] = [_variant(a, np.dtype(dtype), fortran=k % 2 == 1, label_kind=("numpy", "int")[k % 2])
                           for k, a in enumerate(data["annotations"])]
    flags = data["annotations"][1]["keypoint"].flags
    assert flags.f_contiguous and not flags.c_contiguous
    path = dump(data, tmp_path / "d.pkl", protocol=protocol)
    dd = load_pose_dataset(path, cache_dir=cache)
    _assert_rows(dd, data)
    # the same rows as the plain protocol-4 float32 file of the same clips
    ref = make_data()
    for a, r in zip(data["annotations"], ref["annotations"]):
        r["keypoint"], r["keypoint_score"] = a["keypoint"].astype(np.float32), a["keypoint_score"].astype(np.float32)
    _assert_same_rows(dd, load_pose_dataset(dump(ref, tmp_path / "ref.pkl"), cache_dir=cache))


def test_ordereddict_and_numpy1_pickles_load(tmp_path, cache):
    data = make_data()
    od = collections.OrderedDict(split=collections.OrderedDict(data["split"]),
                                 annotations=[collections.OrderedDict(a) for a in data["annotations"]])
    _assert_rows(load_pose_dataset(dump(od, tmp_path / "od.pkl", protocol=2), cache_dir=cache), data)
    # numpy 1 names its helpers numpy.core.*: protocol 2 writes globals as text lines, safe to rewrite
    raw = pickle.dumps(data, protocol=2)
    assert b"numpy._core.multiarray" in raw
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    np1 = tmp_path / "np1.pkl"
    np1.write_bytes(raw)
    _assert_rows(load_pose_dataset(str(np1), cache_dir=cache), data)


def _py2_dumps(obj, protocol):
    """A pickle as Python 2 with numpy 1 writes it: str as byte strings (S / U / T), numpy.core names, dtype
    arguments as ints, array data as a byte string."""
    out, memo = [], [0]

    def put():
        k = memo[0]
        memo[0] += 1
        if protocol == 0:
            out.append(f"p{k}\n".encode())
        else:
            out.append(b"q" + bytes([k]) if k < 256 else b"r" + k.to_bytes(4, "little"))

    def string(raw: bytes):
        if protocol == 0:
            out.append(b"S'" + codecs.escape_encode(raw)[0] + b"'\n")
        elif len(raw) < 256:
            out.append(b"U" + bytes([len(raw)]) + raw)
        else:
            out.append(b"T" + len(raw).to_bytes(4, "little") + raw)
        put()

    def integer(n):
        out.append(f"I{n}\n".encode() if protocol == 0 else b"J" + int(n).to_bytes(4, "little", signed=True))

    def glob(module, name):
        out.append(f"c{module}\n{name}\n".encode())
        put()

    def save_dtype(dt):
        glob("numpy", "dtype")
        out.append(b"(")
        string(dt.str[1:].encode())
        integer(0)
        integer(1)
        out.append(b"tR")
        put()
        out.append(b"(")
        integer(3)
        string(dt.str[:1].encode())
        out.append(b"NNN")
        integer(-1)
        integer(-1)
        integer(0)
        out.append(b"tb")

    def save(x):
        if isinstance(x, np.ndarray):
            glob("numpy.core.multiarray", "_reconstruct")
            out.append(b"(")
            glob("numpy", "ndarray")
            out.append(b"(")
            integer(0)
            out.append(b"t")
            string(b"b")
            out.append(b"tR")
            put()
            out.append(b"(")
            integer(1)
            out.append(b"(")
            for d in x.shape:
                integer(d)
            out.append(b"t")
            save_dtype(x.dtype)
            out.append(b"I00\n" if protocol == 0 else b"\x89")  # is_fortran = False
            string(np.ascontiguousarray(x).tobytes())
            out.append(b"tb")
        elif isinstance(x, np.integer):
            glob("numpy.core.multiarray", "scalar")
            out.append(b"(")
            save_dtype(x.dtype)
            string(x.tobytes())
            out.append(b"tR")
        elif isinstance(x, dict):
            out.append(b"(d" if protocol == 0 else b"}")
            put()
            for k, v in x.items():
                save(k)
                save(v)
                out.append(b"s")
        elif isinstance(x, list):
            out.append(b"(l" if protocol == 0 else b"]")
            put()
            for v in x:
                save(v)
                out.append(b"a")
        elif isinstance(x, tuple):
            out.append(b"(")
            for v in x:
                save(v)
            out.append(b"t")
        elif isinstance(x, str):
            string(x.encode("latin-1"))
        elif isinstance(x, bool):
            out.append((b"I01\n" if x else b"I00\n") if protocol == 0 else (b"\x88" if x else b"\x89"))
        elif isinstance(x, int):
            integer(x)
        else:
            raise TypeError(type(x))

    if protocol == 2:
        out.append(b"\x80\x02")
    save(obj)
    out.append(b".")
    return b"".join(out)


@pytest.mark.parametrize("protocol", [0, 2])
def test_python2_pickles_load(tmp_path, cache, protocol):
    data = make_data(dtype=np.float32)
    data["annotations"][0]["frame_dir"] = "caf\xe9"  # a Python 2 byte string: latin-1 text
    data["split"]["xsub_train"][0] = "caf\xe9"
    data["annotations"][1]["label"] = np.int64(1)  # a numpy scalar: raw bytes as a byte string too
    raw = _py2_dumps(data, protocol)
    assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw
    reference = pickle.loads(raw, encoding="latin1")  # what Python 3 makes of it, unrestricted
    np.testing.assert_array_equal(reference["annotations"][3]["keypoint"], data["annotations"][3]["keypoint"])
    path = tmp_path / "py2.pkl"
    path.write_bytes(raw)
    _assert_rows(load_pose_dataset(str(path), cache_dir=cache), data)


def test_empty_splits_and_files_load(tmp_path, cache):
    data = make_data()
    data["split"]["empty"] = []
    dd = load_pose_dataset(dump(data, tmp_path / "d.pkl"), cache_dir=cache)
    assert dd["empty"].num_rows == 0 and dd["empty"].features == dd["xsub_train"].features
    dd = load_pose_dataset(dump({"split": {"train": []}, "annotations": []}, tmp_path / "none.pkl"), cache_dir=cache)
    assert dd["train"].num_rows == 0 and dd["train"].features == pose_features(["class_0"])
    dd = load_pose_dataset(str(tmp_path / "none.pkl"), cache_dir=cache)  # and again from the cache
    assert dd["train"].num_rows == 0


def test_joint_count_is_checked_against_the_layout(tmp_path, cache):
    from modeling_skeletonclip.pose_layouts import COCO17, JointLayout

    with pytest.raises(ValueError, match="num_joints=18 matches no known joint layout"):
        load_pose_dataset(dump(make_data(), tmp_path / "d.pkl"), num_joints=18, cache_dir=cache)
    with pytest.raises(ValueError, match="disagrees with layout 'coco17'"):
        load_pose_dataset(dump(make_data(), tmp_path / "d.pkl"), num_joints=18, layout="coco17", cache_dir=cache)
    assert load_pose_dataset(str(tmp_path / "d.pkl"), layout=COCO17, cache_dir=cache)["xsub_train"].num_rows == 4
    # a custom skeleton names its layout; its joint count is then the one the clips must have
    layout = JointLayout("eighteen", 18, (1,), (2,), ((0, 1), (1, 17)))
    data = {"split": {"a": ["x"]}, "annotations": [
        {"frame_dir": "x", "label": 0, "img_shape": (8, 8), "keypoint": np.ones((1, 2, 18, 2), np.float32)}]}
    dd = load_pose_dataset(dump(data, tmp_path / "18.pkl"), layout=layout, cache_dir=cache)
    assert dd["a"].features["keypoint"].shape == (None, 18, 2)


def test_scores_outside_unit_range_are_clipped_with_one_warning(tmp_path, cache, caplog):
    data = make_data()
    data["annotations"][0]["keypoint_score"] = np.linspace(-20, 30, 3 * V, dtype=np.float32).reshape(1, 3, V)
    data["annotations"][2]["keypoint_score"][0, 0, 0] = 1.02  # HRNet heatmap maxima can exceed 1 a little
    path = dump(data, tmp_path / "d.pkl")
    with caplog.at_level("WARNING", logger="modeling_skeletonclip.pose_dataset"):
        ds = load_pose_dataset(path, cache_dir=cache)["xsub_train"].with_format("numpy")
    warnings_ = [r for r in caplog.records if "keypoint_score outside [0, 1]" in r.getMessage()]
    assert len(warnings_) == 1 and path in warnings_[0].getMessage() and "2 clip(s)" in warnings_[0].getMessage()
    score = ds[0]["keypoint_score"]
    assert score.min() == 0 and score.max() == 1
    np.testing.assert_array_equal(score, np.clip(data["annotations"][0]["keypoint_score"].reshape(3, V), 0, 1))
    assert ds[2]["keypoint_score"][0, 0] == 1


def test_unsafe_pickle_error_is_both_kinds():
    assert issubclass(UnsafePickleError, PoseDataError) and issubclass(UnsafePickleError, pickle.UnpicklingError)
    assert issubclass(PoseDataError, ValueError)
    from modeling_skeletonclip import safe_load_pickle as exported
    from modeling_skeletonclip.safe_pickle import UnsafePickleError as same

    assert exported is safe_load_pickle and same is UnsafePickleError


def test_safe_load_limits_and_file_objects(tmp_path):
    deep = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(UnsafePickleError, match="max_depth"):
        safe_load_pickle(io.BytesIO(pickle.dumps(deep)))
    assert safe_load_pickle(io.BytesIO(pickle.dumps(deep)), max_depth=64) == deep
    shared = [[0.5] * 1000] * 1000  # 1000 references to one list: ~24 MB expanded from 10 KB
    with pytest.raises(UnsafePickleError, match="max_expanded_bytes"):
        safe_load_pickle(io.BytesIO(pickle.dumps(shared)), max_expanded_bytes=2**20)
    assert safe_load_pickle(io.BytesIO(pickle.dumps(shared))) == shared
    # a stream of two pickles: each load stops right after its own STOP, as pickle.load does
    stream = io.BytesIO(pickle.dumps({"a": np.arange(3)}) + pickle.dumps([1, 2]))
    np.testing.assert_array_equal(safe_load_pickle(stream)["a"], np.arange(3))
    assert safe_load_pickle(stream) == [1, 2]
    # arrays come back writable and owning their data, like pickle's
    arr = safe_load_pickle(io.BytesIO(pickle.dumps(np.arange(6.0).reshape(2, 3), protocol=4)))
    arr[0, 0] = 7.0
    assert arr.flags.writeable


def test_any_split_name_loads(tmp_path, cache):
    data = make_data()
    names = ["x" * 300 + "\u00e9", "a..b", "."]  # too long for a file name, not valid datasets split names
    data["split"] = {name: members for name, members in zip(names, [["clip0"], ["clip1", "clip2"], []])}
    dd = load_pose_dataset(dump(data, tmp_path / "d.pkl"), cache_dir=cache)
    assert list(dd) == names and [dd[n].num_rows for n in names] == [1, 2, 0]
    assert dd["a..b"][1]["frame_dir"] == "clip2"


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_safe_load_arrays_match_pickle(protocol):
    """Arrays come back as pickle makes them: values, dtype (big-endian data in native order), memory order and
    writeability (a large buffer becomes the array's memory, as numpy's set-state does)."""
    arrays = [np.arange(6, dtype=">f4").reshape(2, 3), np.asfortranarray(np.ones((300, 4), "<f8")),
              np.arange(24, dtype=np.int16).reshape(2, 3, 4).transpose(1, 0, 2), np.array([True, False]),
              np.zeros((0, 17, 2), np.float16), np.arange(5000, dtype=">i8"), np.array([1 + 2j], np.complex64)]
    raw = pickle.dumps(arrays, protocol=protocol)
    for ours, theirs in zip(safe_load_pickle(io.BytesIO(raw)), pickle.loads(raw)):
        np.testing.assert_array_equal(ours, theirs)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert ours.flags.f_contiguous == theirs.flags.f_contiguous and ours.flags.writeable == theirs.flags.writeable
