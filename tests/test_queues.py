import queue
import threading

from oculus_server.threads.queues import put_freshest, take_newest


def test_put_freshest_evicts_oldest_and_counts():
    q: queue.Queue = queue.Queue(maxsize=2)
    assert put_freshest(q, 1) == 0
    assert put_freshest(q, 2) == 0
    assert put_freshest(q, 3) == 1
    assert put_freshest(q, 4) == 1
    assert [q.get_nowait(), q.get_nowait()] == [3, 4]


def test_take_newest_returns_freshest_and_skipped_count():
    q: queue.Queue = queue.Queue(maxsize=2)
    for i in range(5):
        put_freshest(q, i)
    item, skipped = take_newest(q, 0.0)
    assert item == 4 and skipped == 1
    assert q.empty()


def test_take_newest_times_out_with_none():
    q: queue.Queue = queue.Queue(maxsize=2)
    assert take_newest(q, 0.01) == (None, 0)


def test_take_newest_wakes_on_put():
    q: queue.Queue = queue.Queue(maxsize=2)
    threading.Timer(0.05, lambda: q.put("x")).start()
    assert take_newest(q, 2.0) == ("x", 0)
