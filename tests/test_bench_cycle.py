"""`medreq bench cycle --image`: every request carries a real prescription photo, which the server
sniffs and stores; the cycles it counts are cycles that happened."""

from __future__ import annotations

import filetype

from medreq.samples import photo
from medreq.simulate.bench.cycle import bench_cycle
from medreq.simulate.server import ServerProcess


def test_the_sample_photo_is_a_real_png_of_patient_size() -> None:
    image = photo()
    assert filetype.guess_mime(image) == "image/png"
    assert 20_000 <= len(image) <= 50_000  # the "20–50 KB, as patients send"
    assert photo(seed=1) != image  # noise, so deflate cannot shrink it


def test_bench_cycle_with_images_stores_one_photo_per_request() -> None:
    with ServerProcess() as server:
        result = bench_cycle(server.url, server.pid, workers=2, processes=1, warmup=0.5, seconds=2, image=True)
        stored = [f for f in (server.data_dir / "media").rglob("*") if f.is_file()]
        assert result["image_bytes"] == len(photo())
        assert result["cycles"] > 0
        assert (result["lost"], result["errors"]) == (0, 0)
        assert len(stored) >= result["cycles"]  # warm-up cycles stored theirs too
        assert all(f.stat().st_size == len(photo()) for f in stored)
