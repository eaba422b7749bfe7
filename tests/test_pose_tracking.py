"""PoseTracker on constructed detection sequences: identities through crossings, swapped detection order, gaps,
spurious detections, empty videos, shapes and dtypes."""

import numpy as np
import pytest

from modeling_skeletonclip.pose_estimators import PoseDetections
from modeling_skeletonclip.pose_tracking import PoseTracker


# A standing person in COCO-17 order, in units of body height (x right, y down, origin at the hips' midpoint).
STANDING = np.array(
    [[0.0, -0.85], [-0.03, -0.88], [0.03, -0.88], [-0.07, -0.86], [0.07, -0.86],  # nose, eyes, ears
     [-0.15, -0.65], [0.15, -0.65], [-0.2, -0.38], [0.2, -0.38], [-0.22, -0.12], [0.22, -0.12],  # arms
     [-0.1, 0.0], [0.1, 0.0], [-0.11, 0.45], [0.11, 0.45], [-0.12, 0.9], [0.12, 0.9]],  # hips, knees, ankles
    dtype=np.float32,
)


def person(x, y, height=120.0, arms_up=False, score=0.9):
    """keypoints [17, 2] and scores [17] of a person whose hips are at (x, y)."""
    pose = STANDING.copy()
    if arms_up:  # elbows and wrists above the head
        pose[7:11, 1] = [-1.0, -1.0, -1.2, -1.2]
    return pose * height + np.array([x, y], np.float32), np.full(17, score, np.float32)


def frame(*people):
    """PoseDetections of one frame from (keypoints, scores) pairs."""
    if not people:
        return PoseDetections(np.zeros((0, 17, 2), np.float32), np.zeros((0, 17), np.float32))
    return PoseDetections(np.stack([p[0] for p in people]), np.stack([p[1] for p in people]))


def run(frames, **kwargs):
    tracker = PoseTracker(**kwargs)
    for detections in frames:
        tracker.update(detections)
    return tracker.result()


def test_crossing_paths_keep_identities():
    # A walks right, B walks left along the same line; identical poses, so only their motion tells them apart.
    # They coincide at frame 10, where both tracks' last poses are the same: only their velocities tell which
    # detection of frame 11 is whose. The detection order alternates, A first in frame 11.
    num_frames = 21
    xs_a = np.linspace(100, 500, num_frames)
    xs_b = xs_a[::-1]
    frames = []
    for t in range(num_frames):
        pair = [person(xs_b[t], 300), person(xs_a[t], 300)]
        frames.append(frame(*(pair[::-1] if t % 2 else pair)))
    keypoint, score = run(frames, max_persons=2)
    assert keypoint.shape == (2, num_frames, 17, 2)
    hips = keypoint[:, :, 11:13].mean(axis=2)[..., 0]  # [M, T] x of the hips
    # both tracks start in frame 0: first-appearance order is detection order (B, then A)
    np.testing.assert_allclose(hips[0], xs_b, atol=1e-3)
    np.testing.assert_allclose(hips[1], xs_a, atol=1e-3)
    assert (score > 0).all()


def test_swapped_detection_order_stays_on_tracks():
    rng = np.random.default_rng(0)
    num_frames = 12
    left = [person(150 + 3 * t, 300) for t in range(num_frames)]
    right = [person(450 - 2 * t, 310, arms_up=True, score=0.7) for t in range(num_frames)]
    frames = []
    for t in range(num_frames):
        pair = [left[t], right[t]]
        if rng.random() < 0.5 or t % 2:  # a mix of both orders
            pair = pair[::-1]
        frames.append(frame(*pair))
    keypoint, score = run(frames)
    first = int(np.argmin(keypoint[:, 0, 11, 0]))  # the track that starts on the left
    other = 1 - first
    np.testing.assert_array_equal(keypoint[first], np.stack([p[0] for p in left]))
    np.testing.assert_array_equal(keypoint[other], np.stack([p[0] for p in right]))
    np.testing.assert_array_equal(score[other], np.full((num_frames, 17), 0.7, np.float32))


def test_missing_frames_are_zero_with_score_zero():
    # One person, absent in frames 4-6 (three frames, within the gap tolerance), back near where they were.
    num_frames = 12
    poses = [person(200 + 2 * t, 300) for t in range(num_frames)]
    absent = {4, 5, 6}
    frames = [frame() if t in absent else frame(poses[t]) for t in range(num_frames)]
    keypoint, score = run(frames, max_persons=2)
    assert keypoint.shape == (1, num_frames, 17, 2)  # one track, not two: the gap is bridged
    for t in range(num_frames):
        if t in absent:
            assert (keypoint[0, t] == 0).all() and (score[0, t] == 0).all()
        else:
            np.testing.assert_array_equal(keypoint[0, t], poses[t][0])
            assert (score[0, t] == 0.9).all()


def test_gap_longer_than_tolerance_starts_a_new_track():
    poses = [person(200, 300) for _ in range(10)]
    frames = [frame() if 2 <= t < 7 else frame(poses[t]) for t in range(10)]
    keypoint, score = run(frames, max_persons=3, max_gap=3)  # 5 missing frames > 3
    assert keypoint.shape[0] == 2
    assert (score[0, :2] > 0).all() and (score[0, 2:] == 0).all()
    assert (score[1, :7] == 0).all() and (score[1, 7:] > 0).all()


def test_short_spurious_detection_is_dropped():
    # Two people throughout; a third detection far from both appears in frames 5-7 only.
    num_frames = 15
    frames = []
    for t in range(num_frames):
        people = [person(150 + t, 300), person(450 - t, 300)]
        if 5 <= t < 8:
            people.insert(1, person(300, 80, height=60, score=0.95))  # a high score: persistence decides
        frames.append(frame(*people))
    tracker = PoseTracker(max_persons=2)
    for detections in frames:
        tracker.update(detections)
    assert len(tracker.tracks) == 3
    keypoint, score = tracker.result()
    assert keypoint.shape == (2, num_frames, 17, 2)
    assert (score > 0).all()  # the kept tracks are the two people, seen in every frame
    hips_x = keypoint[:, :, 11:13, 0].mean(axis=-1)
    np.testing.assert_allclose(hips_x[0], 150 + np.arange(num_frames), atol=1e-3)
    np.testing.assert_allclose(hips_x[1], 450 - np.arange(num_frames), atol=1e-3)


def test_a_far_detection_does_not_take_over_a_missing_persons_track():
    # B is missing in frames 5-7 while a spurious detection appears far from everyone; B comes back at frame 8.
    num_frames = 14
    frames = []
    for t in range(num_frames):
        people = [person(150 + t, 300)]
        people.append(person(900, 60, height=50) if 5 <= t < 8 else person(450 - t, 300))
        frames.append(frame(*people))
    keypoint, score = run(frames, max_persons=2)
    assert keypoint.shape == (2, num_frames, 17, 2)
    assert (score[0] > 0).all()
    assert (score[1, 5:8] == 0).all() and (keypoint[1, 5:8] == 0).all()
    present = [t for t in range(num_frames) if not 5 <= t < 8]
    np.testing.assert_allclose(keypoint[1, present, 11:13, 0].mean(axis=-1), 450 - np.array(present), atol=1e-3)


def test_persistence_ties_are_broken_by_total_score():
    frames = [frame(person(100, 300, score=0.3), person(400, 300, score=0.8), person(700, 300, score=0.5))
              for _ in range(5)]
    keypoint, score = run(frames, max_persons=2)
    # the 0.8 and 0.5 tracks, in order of first appearance (detection order within frame 0)
    np.testing.assert_allclose(score[:, 0, 0], [0.8, 0.5])
    np.testing.assert_allclose(keypoint[:, 0, 11, 0], [400 - 12, 700 - 12], atol=1e-3)


def test_output_order_is_first_appearance():
    # The person who appears later is seen in more frames, yet comes second.
    frames = [frame(person(100, 300)) for _ in range(3)] + [frame(person(500, 300), person(100, 300))]
    frames += [frame(person(500, 300)) for _ in range(8)]
    tracker = PoseTracker()
    for detections in frames:
        tracker.update(detections)
    assert [len(t.frames) for t in tracker.tracks] == [4, 9]
    keypoint, score = tracker.result()
    assert keypoint.shape[0] == 2
    assert score[0, 0, 0] > 0 and score[1, 0, 0] == 0
    assert (score[1, 3:] > 0).all()


def test_zero_frames_and_frames_without_people():
    keypoint, score = PoseTracker().result()
    assert keypoint.shape == (0, 0, 17, 2) and score.shape == (0, 0, 17)
    assert keypoint.dtype == np.float32 and score.dtype == np.float32
    keypoint, score = run([frame() for _ in range(4)])
    assert keypoint.shape == (0, 4, 17, 2) and score.shape == (0, 4, 17)


@pytest.mark.parametrize("max_persons", [1, 2, 3])
def test_never_more_than_max_persons(max_persons):
    rng = np.random.default_rng(max_persons)
    frames = [frame(*[person(x, y) for x, y in rng.uniform(0, 2000, size=(5, 2))]) for _ in range(6)]
    keypoint, score = run(frames, max_persons=max_persons)
    assert keypoint.shape == (max_persons, 6, 17, 2) and score.shape == (max_persons, 6, 17)
    assert keypoint.dtype == np.float32 and score.dtype == np.float32


def test_other_joint_counts_and_float64_input():
    kp = np.random.default_rng(0).uniform(100, 200, size=(1, 25, 2))  # float64
    frames = [PoseDetections(kp + t, np.ones((1, 25))) for t in range(3)]
    keypoint, score = run(frames)
    assert keypoint.shape == (1, 3, 25, 2) and keypoint.dtype == np.float32 and score.dtype == np.float32
    np.testing.assert_allclose(keypoint[0, 2], kp[0] + 2, rtol=1e-6)


def test_non_finite_joints_become_missing():
    kp, sc = person(200, 300)
    kp = kp.copy()
    kp[3] = np.nan
    keypoint, score = run([frame((kp, sc))] * 2)
    assert (keypoint[0, :, 3] == 0).all() and (score[0, :, 3] == 0).all()
    assert (score[0, :, 4] == 0.9).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_persons"):
        PoseTracker(max_persons=0)
    with pytest.raises(ValueError, match="unknown threshold.*'max_gap'"):
        PoseTracker(max_gaps=3)
    tracker = PoseTracker()
    with pytest.raises(ValueError, match=r"keypoints \[N, V, 2\] and scores \[N, V\]"):
        tracker.update(PoseDetections(np.zeros((1, 17, 2)), np.zeros((2, 17))))
    tracker.update(frame(person(10, 10)))
    with pytest.raises(ValueError, match="frame 1 has 25 joints per person, earlier frames 17"):
        tracker.update(PoseDetections(np.zeros((1, 25, 2)), np.zeros((1, 25))))


def crossing_with_gaps(num_frames=60):
    """Two people walking past each other, one leaving for a while, a spurious detection now and then."""
    frames = []
    for t in range(num_frames):
        people = [person(40 + 4 * t, 300)]
        if not 20 <= t < 28:
            people.append(person(300 - 3 * t, 310, arms_up=t % 10 < 5))
        if t % 13 == 5:
            people.append(person(600, 50, height=30, score=0.4))
        frames.append(frame(*people))
    return frames


def test_recent_of_all_frames_is_the_result():
    tracker = PoseTracker(max_persons=2)
    for detections in crossing_with_gaps():
        tracker.update(detections)
    for got, expected in zip(tracker.recent(60), tracker.result()):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(tracker.recent(1000), tracker.result()):
        np.testing.assert_array_equal(got, expected)


def test_recent_ranks_the_tracks_within_its_frames():
    frames = [frame(person(100, 300)) for _ in range(30)] + [frame(person(400, 300), person(100, 300))] * 3
    tracker = PoseTracker(max_persons=1)
    for detections in frames:
        tracker.update(detections)
    whole, _ = tracker.result()
    assert whole.shape == (1, 33, 17, 2) and whole[0, 0, 11, 0] < 200  # the person there from the start
    last, last_scores = tracker.recent(3)
    assert last.shape == (1, 3, 17, 2) and (last_scores > 0).all()
    assert tracker.recent(2)[0][0, 0, 11, 0] < 200  # both in all 3 frames: the higher score sum, then the older


def test_a_tracker_that_forgets_gives_the_same_recent_frames():
    frames = crossing_with_gaps(90)
    full, bounded = PoseTracker(max_persons=2, max_gap=5), PoseTracker(max_persons=2, max_gap=5, keep_frames=16)
    for t, detections in enumerate(frames):
        full.update(detections)
        bounded.update(detections)
        for n in (1, 8, 16):
            for got, expected in zip(bounded.recent(n), full.recent(n)):
                np.testing.assert_array_equal(got, expected, err_msg=f"frame {t}, last {n}")
    assert sum(len(track.frames) for track in bounded.tracks) <= 2 * 16 + 2 * len(bounded.tracks)
    assert len(bounded.tracks) < len(full.tracks)  # closed spurious tracks are forgotten
    with pytest.raises(ValueError, match=r"keeps the last 16 frames \(keep_frames\) and has seen 90; use recent\(16\)"):
        bounded.result()
    with pytest.raises(ValueError, match="asked for 17 frames; this tracker keeps 16"):
        bounded.recent(17)
    with pytest.raises(ValueError, match="keep_frames must be a positive integer"):
        PoseTracker(keep_frames=0)
