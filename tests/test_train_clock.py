"""train_clock: a run's training wall time summed over the processes that trained it."""

import json
import time

from vae_jax import loop, train_clock

from helpers import straight_config


def test_clock_adds_its_own_time_to_the_recorded_total(tmp_path):
    assert train_clock.recorded_seconds(tmp_path) is None
    clock = train_clock.TrainClock(tmp_path, time.perf_counter() - 5.0)
    assert 5.0 <= clock.write() < 60.0
    later = train_clock.TrainClock(tmp_path, time.perf_counter() - 2.0)
    total = later.write()
    assert train_clock.recorded_seconds(tmp_path) == total
    assert 7.0 <= total < 120.0


def test_unreadable_record_counts_from_zero(tmp_path):
    (tmp_path / train_clock.FILE).write_text("{not json")
    assert train_clock.recorded_seconds(tmp_path) is None
    clock = train_clock.TrainClock(tmp_path, time.perf_counter())
    assert clock.write() < 60.0
    assert json.loads((tmp_path / train_clock.FILE).read_text())["seconds"] < 60.0


def test_training_adds_each_process_wall_time(tmp_path):
    (tmp_path / train_clock.FILE).write_text('{"seconds": 1000.0}')  # earlier processes
    start = time.perf_counter()
    loop.train_and_evaluate(straight_config(20), str(tmp_path))
    first = train_clock.recorded_seconds(tmp_path)
    assert 1000.0 < first <= 1000.0 + time.perf_counter() - start
    start = time.perf_counter()
    loop.train_and_evaluate(straight_config(40), str(tmp_path))  # resumes, extends
    second = train_clock.recorded_seconds(tmp_path)
    assert first < second <= first + time.perf_counter() - start
    loop.train_and_evaluate(straight_config(40), str(tmp_path))  # finished: no time
    assert train_clock.recorded_seconds(tmp_path) == second
