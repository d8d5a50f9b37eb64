"""The controller's secret store (plugins/lookup/lakehouse_secret.py) under parallel forks: every
host of a group may ask for the same new credential at once (a distributed MinIO's members)."""

from __future__ import annotations

import multiprocessing

from conftest import load_source

store = load_source("plugins/lookup/lakehouse_secret.py")


def _ask(directory: str, start, answers) -> None:
    start.wait()
    answers.put(store.read_or_create(directory, "minio/root_user", 20))


def test_parallel_askers_of_a_new_credential_all_get_the_one_value_written(tmp_path):
    context = multiprocessing.get_context("fork")
    start, answers = context.Event(), context.Queue()
    askers = [context.Process(target=_ask, args=(str(tmp_path), start, answers)) for _ in range(8)]
    for asker in askers:
        asker.start()
    start.set()
    values = {answers.get(timeout=30) for _ in askers}
    for asker in askers:
        asker.join(timeout=30)
    # One value, the one on disk, whole; no temporary file left beside it.
    assert len(values) == 1 and len(next(iter(values))) == 20
    assert (tmp_path / "minio" / "root_user").read_text() == next(iter(values)) + "\n"
    assert [p.name for p in (tmp_path / "minio").iterdir()] == ["root_user"]
    assert all(asker.exitcode == 0 for asker in askers)
