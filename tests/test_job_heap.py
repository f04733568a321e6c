"""``job_heap``: the heap that exists when a set-based job starts is frozen for the job, and given back."""

import gc

from instrumentshare.core.heap import job_heap


def test_the_heap_is_frozen_for_the_job_and_given_back_once_nested_uses_end():
    # Frozen objects can still be freed meanwhile (their count only falls), so the checks leave room.
    before = gc.get_freeze_count()
    with job_heap():
        frozen = gc.get_freeze_count()
        assert frozen > before
        made = [[] for _ in range(1000)]  # what the job makes is not frozen, not even by a nested job
        with job_heap():
            assert gc.get_freeze_count() < frozen + len(made)
        assert 0 < gc.get_freeze_count() <= frozen  # the nested job's end gave nothing back
    assert gc.get_freeze_count() == 0
    assert len(made) == 1000


def test_a_failing_job_gives_the_heap_back():
    try:
        with job_heap():
            raise RuntimeError("the job failed")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0


def test_garbage_cycles_made_during_the_job_are_still_collected():
    class Node:
        pass

    with job_heap():
        for _ in range(100):
            a, b = Node(), Node()
            a.other, b.other = b, a
        del a, b
        found = gc.collect()
    assert found >= 200
