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


class _AlwaysFull(queue.Queue):
    """A queue that another producer refills at once: every put finds it full."""

    def put_nowait(self, item: object) -> None:
        raise queue.Full


def test_put_freshest_never_raises_and_counts_its_own_item_when_it_cannot_get_in():
    q = _AlwaysFull(maxsize=1)
    assert put_freshest(q, "x", max_tries=4) == 1  # nothing evicted (empty), the item dropped


def test_put_freshest_under_competing_producers_never_raises():
    q: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for i in range(2000):
                put_freshest(q, i)
        except BaseException as exc:  # noqa: BLE001 - the test asserts there is none
            errors.append(exc)

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and q.qsize() <= 2
