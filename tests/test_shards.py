"""The training shard reader: round trip, robustness, rank split, determinism and exact resume."""
from __future__ import annotations

import io
import json
import logging
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.char_tokenizer import CharTokenizer
from groupvit.data.config import AugmentConfig, DataConfig
from groupvit.data.shards import build_train_loader, list_shards
from groupvit.data.transforms import swap_left_right

TOKENIZE = CharTokenizer(context_length=96)
PLAIN = AugmentConfig(crop_scale=[1.0, 1.0], hflip=False, randaugment=False, random_erasing=0.0)


def png_bytes(array: np.ndarray, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def write_tar(path: Path, samples: list[dict[str, bytes | str]]) -> Path:
    """One shard in the contract's layout: KEY.<ext> members, in order. Values may be raw bytes (corruption)."""
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            key = sample["__key__"]
            for ext, value in sample.items():
                if ext == "__key__":
                    continue
                data = value.encode() if isinstance(value, str) else value
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def colour_of(index: int) -> tuple[int, int, int]:
    return (index * 37 % 256, index * 91 % 256, index * 13 % 256)


def good_sample(index: int, *, size: int = 16, nouns: bool = True, fmt: str = "png") -> dict[str, bytes | str]:
    key = f"{index:09d}"
    caption = f"a circle left of a star number {index}"
    image = np.zeros((size, size, 3), dtype=np.uint8) + np.array(colour_of(index), dtype=np.uint8)
    meta = {"key": key, "caption": caption}
    if nouns:
        meta["nouns"] = ["circle", "star"]
    return {"__key__": key, fmt: png_bytes(image, "jpeg" if fmt == "jpg" else "png"), "txt": caption, "json": json.dumps(meta)}


def write_world(root: Path, shards: int, per_shard: int, **kwargs: object) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(shards):
        samples = [good_sample(s * per_shard + i, **kwargs) for i in range(per_shard)]
        paths.append(str(write_tar(root / f"shard-{s:06d}.tar", samples)))
    return paths


def take(loader, steps: int) -> list[dict]:
    it = iter(loader)
    return [next(it) for _ in range(steps)]


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        assert x["key"] == y["key"]
        assert x["caption"] == y["caption"]
        for name in ("image", "text", "prompts"):
            if name in x:
                assert torch.equal(x[name], y[name]), name


@pytest.fixture(scope="module")
def clean_shards(tmp_path_factory) -> list[str]:
    return write_world(tmp_path_factory.mktemp("clean"), shards=4, per_shard=8)


@pytest.fixture(scope="module")
def dirty_shards(tmp_path_factory) -> list[str]:
    """4 shards x 10 samples; two corrupt images, one bad json, one missing caption; shard 2 has no nouns."""
    root = tmp_path_factory.mktemp("dirty")
    paths = []
    for s in range(4):
        samples = [good_sample(s * 10 + i, nouns=(s != 2), fmt="jpg" if s == 3 else "png") for i in range(10)]
        if s == 0:
            samples[3]["png"] = samples[3]["png"][:40]
        if s == 1:
            samples[5]["json"] = "{not json"
        if s == 3:
            samples[0]["jpg"] = samples[0]["jpg"][: len(samples[0]["jpg"]) // 2]
            del samples[7]["txt"]
        paths.append(str(write_tar(root / f"shard-{s:06d}.tar", samples)))
    return paths


def test_round_trip_captions_keys_and_normalisation(clean_shards):
    data = DataConfig(shuffle_buffer=5, num_workers=0, multi_label_nouns=0, augment=PLAIN)
    loader = build_train_loader(
        data, clean_shards, image_size=12, batch_size=4, tokenize=TOKENIZE, seed=3, epoch_samples=32
    )
    batches = take(loader, loader.steps_per_epoch)
    assert loader.steps_per_epoch == 8
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == [f"{i:09d}" for i in range(32)]
    assert keys != sorted(keys)  # shuffled
    mean, std = torch.tensor(PLAIN.mean), torch.tensor(PLAIN.std)
    for batch in batches:
        assert "prompts" not in batch
        assert batch["image"].shape == (4, 3, 12, 12) and batch["image"].dtype == torch.float32
        assert batch["text"].dtype == torch.long and batch["text"].shape == (4, 96)
        for row, key in enumerate(batch["key"]):
            index = int(key)
            assert TOKENIZE.decode(batch["text"][row])[0] == f"a circle left of a star number {index}"
            expected = (torch.tensor(colour_of(index), dtype=torch.float32) / 255 - mean) / std
            pixels = batch["image"][row].reshape(3, -1)
            assert torch.allclose(pixels, expected[:, None].expand_as(pixels), atol=1e-5)
    assert loader.counters()["samples"] == 32


def test_list_shards_patterns_and_missing(clean_shards, tmp_path):
    folder = str(Path(clean_shards[0]).parent)
    assert list_shards(folder) == clean_shards
    assert list_shards(folder + "/shard-{000000..000003}.tar") == clean_shards
    assert list_shards([folder + "/shard-00000[01].tar", clean_shards[0]]) == clean_shards[:2]
    missing = str(tmp_path / "shard-000009.tar")
    with pytest.raises(FileNotFoundError, match="shard-000009.tar"):
        list_shards([clean_shards[0], missing])
    with pytest.raises(FileNotFoundError, match="shard-000009.tar"):
        build_train_loader(
            DataConfig(), [missing], image_size=8, batch_size=2, tokenize=TOKENIZE, seed=0, epoch_samples=4
        )


def test_bad_samples_are_skipped_and_counted(dirty_shards):
    data = DataConfig(shuffle_buffer=4, num_workers=0, multi_label_nouns=2)
    loader = build_train_loader(
        data, dirty_shards, image_size=8, batch_size=4, tokenize=TOKENIZE, seed=0, epoch_samples=36
    )
    batches = take(loader, 9)
    keys = {k for b in batches for k in b["key"]}
    bad = {"000000003", "000000015", "000000030", "000000037"}
    assert keys == {f"{i:09d}" for i in range(40)} - bad
    counts = loader.counters()
    assert counts["corrupt_image"] == 2  # one truncated PNG, one truncated JPEG
    assert counts["bad_json"] == 1
    assert counts["missing_caption"] == 1
    assert counts["samples"] == 36
    assert "4 dropped" in loader.summary()


def test_short_captions_dropped_and_counted(tmp_path):
    samples = [good_sample(i) for i in range(6)]
    samples[2]["txt"] = "circle"
    paths = [str(write_tar(tmp_path / "shard-000000.tar", samples))]
    data = DataConfig(shuffle_buffer=0, num_workers=0, min_caption_words=2, multi_label_nouns=0)
    loader = build_train_loader(data, paths, image_size=8, batch_size=5, tokenize=TOKENIZE, seed=0, epoch_samples=5)
    (batch,) = take(loader, 1)
    assert "000000002" not in batch["key"]
    assert loader.counters()["short_caption"] == 1


@pytest.mark.parametrize("num_workers", [0, 2])
def test_all_corrupt_shards_raise_naming_them(tmp_path, num_workers):
    paths = []
    for s in range(2):
        samples = [good_sample(s * 3 + i) for i in range(3)]
        for sample in samples:
            sample["png"] = sample["png"][:30]
        paths.append(str(write_tar(tmp_path / f"broken-{s}.tar", samples)))
    data = DataConfig(shuffle_buffer=2, num_workers=num_workers)
    loader = build_train_loader(data, paths, image_size=8, batch_size=2, tokenize=TOKENIZE, seed=0, epoch_samples=4)
    with pytest.raises(RuntimeError, match="no readable sample") as info:
        take(loader, 1)
    assert "broken-0.tar" in str(info.value)


def test_damaged_tar_counted_and_others_read(clean_shards, tmp_path):
    blob = Path(clean_shards[0]).read_bytes()
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(blob[: len(blob) // 2 + 100])
    data = DataConfig(shuffle_buffer=0, num_workers=0, multi_label_nouns=0)
    loader = build_train_loader(
        data, [str(damaged), clean_shards[1]], image_size=8, batch_size=2, tokenize=TOKENIZE, seed=0, epoch_samples=16
    )
    keys = {k for b in take(loader, 8) for k in b["key"]}  # 16 samples: more than both shards hold
    assert {f"{i:09d}" for i in range(8, 16)} <= keys
    assert any(int(k) < 8 for k in keys)  # the readable head of the damaged shard
    assert loader.counters()["shard_error"] >= 1


def test_more_readers_than_shards(clean_shards, caplog):
    with pytest.raises(ValueError, match="cannot be split over 3 ranks"):
        build_train_loader(
            DataConfig(), clean_shards[:2], image_size=8, batch_size=2, tokenize=TOKENIZE, seed=0,
            epoch_samples=12, world_size=3,
        )
    with caplog.at_level(logging.WARNING, logger="groupvit.data.shards"):
        loader = build_train_loader(
            DataConfig(num_workers=4), clean_shards[:2], image_size=8, batch_size=2, tokenize=TOKENIZE,
            seed=0, epoch_samples=8,
        )
    assert loader.num_workers == 2
    assert "using num_workers=2" in caplog.text


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ranks_see_disjoint_halves_of_the_epoch(clean_shards, num_workers):
    data = DataConfig(shuffle_buffer=3, num_workers=num_workers, multi_label_nouns=0)
    seen = []
    for rank in range(2):
        loader = build_train_loader(
            data, clean_shards, image_size=8, batch_size=4, tokenize=TOKENIZE, seed=1, epoch_samples=32,
            rank=rank, world_size=2,
        )
        assert loader.steps_per_epoch == 4
        seen.append({k for b in take(loader, 4) for k in b["key"]})
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {f"{i:09d}" for i in range(32)}


def test_same_seed_same_stream_other_seed_other_stream(dirty_shards):
    def stream(seed: int) -> list[dict]:
        loader = build_train_loader(
            DataConfig(shuffle_buffer=6, num_workers=0), dirty_shards, image_size=10, batch_size=3,
            tokenize=TOKENIZE, seed=seed, epoch_samples=30,
        )
        return take(loader, 4)

    first = stream(7)
    assert_same_batches(first, stream(7))
    other = stream(8)
    assert [b["key"] for b in other] != [b["key"] for b in first]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_equals_tail_of_uninterrupted_stream(dirty_shards, num_workers):
    data = DataConfig(shuffle_buffer=5, num_workers=num_workers, multi_label_nouns=3)

    def loader(start_step: int):
        # 9 steps per epoch (odd, so epochs do not align with the workers' round robin); 3 epochs in 22 steps.
        return build_train_loader(
            data, dirty_shards, image_size=10, batch_size=3, tokenize=TOKENIZE, seed=5, epoch_samples=27,
            start_step=start_step,
        )

    full = take(loader(0), 22)
    for start in (7, 13):
        resumed = loader(start)
        assert_same_batches(take(resumed, 22 - start), full[start:])
        assert resumed.counters()["resume_skipped"] > 0


def test_loader_leaves_global_rng_alone(clean_shards):
    state = torch.get_rng_state()
    take(build_train_loader(DataConfig(num_workers=0), clean_shards, image_size=8, batch_size=2,
                            tokenize=TOKENIZE, seed=0, epoch_samples=8), 2)
    assert torch.equal(state, torch.get_rng_state())


def test_prompts_per_caption_from_json_nouns_or_extraction(dirty_shards):
    data = DataConfig(shuffle_buffer=0, num_workers=0, multi_label_nouns=3, prompt_templates="simple", augment=PLAIN)
    loader = build_train_loader(
        data, dirty_shards, image_size=8, batch_size=6, tokenize=TOKENIZE, seed=0, epoch_samples=36
    )
    for batch in take(loader, 6):
        assert batch["prompts"].shape == (6, 3, 96)
        for row, caption in enumerate(batch["caption"]):
            prompts = TOKENIZE.decode(batch["prompts"][row])
            # json nouns where present, extracted nouns (circle, star, number) for shard 2 which has none
            nouns = {p for p in prompts if p != caption}
            assert nouns <= {"a photo of a circle.", "a photo of a star.", "a photo of a number."}
            assert {"a photo of a circle.", "a photo of a star."} <= nouns
            if 20 <= int(batch["key"][row]) < 30:
                assert len(nouns) == 3
            else:
                assert prompts[2] == caption  # two json nouns, padded with the caption


def test_flip_swaps_left_right_in_caption_and_image(tmp_path):
    samples = []
    for i in range(24):
        image = np.zeros((16, 16, 3), dtype=np.uint8)
        image[:, :8, 0] = 255  # red on the left half
        image[:, 8:, 2] = 255  # blue on the right half
        samples.append({"__key__": f"{i:09d}", "png": png_bytes(image), "txt": "red on the left, blue on the right"})
    paths = [str(write_tar(tmp_path / "shard-000000.tar", samples))]
    data = DataConfig(shuffle_buffer=0, num_workers=0, multi_label_nouns=0, augment=replace(PLAIN, hflip=True))
    loader = build_train_loader(data, paths, image_size=16, batch_size=24, tokenize=TOKENIZE, seed=0, epoch_samples=24)
    (batch,) = take(loader, 1)
    flipped = 0
    for image, caption in zip(batch["image"], batch["caption"]):
        red_left = bool(image[0, :, :8].mean() > image[0, :, 8:].mean())
        assert caption == ("red on the left, blue on the right" if red_left else "red on the right, blue on the left")
        flipped += not red_left
    assert 0 < flipped < 24


def test_swap_left_right_words():
    assert swap_left_right("a star left of a ring") == "a star right of a ring"
    assert swap_left_right("Right: the leftmost circle, bright copyright") == "Left: the rightmost circle, bright copyright"
    assert swap_left_right("LEFT and right") == "RIGHT and left"


def test_round_trip_through_generated_world(tmp_path):
    generate = pytest.importorskip("groupvit.data.world.generate")
    from groupvit.data.world.config import WorldConfig

    cfg = WorldConfig(
        num_train=40, num_val=2, num_eval=2, shard_size=20, image_size=32,
        classes=["circle", "square", "triangle", "star"], rotation_deg=30.0,
    )
    generate.generate_world(cfg, tmp_path / "world", workers=1, progress=False)
    paths = list_shards(str(tmp_path / "world" / "train"))
    written, nouns = {}, {}
    for path in paths:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, ext = member.name.split(".", 1)
                if ext == "txt":
                    written[key] = tar.extractfile(member).read().decode()
                if ext == "json":
                    nouns[key] = json.loads(tar.extractfile(member).read())["nouns"]
    data = DataConfig(shuffle_buffer=10, num_workers=0, multi_label_nouns=2, prompt_templates="simple",
                      augment=replace(PLAIN, hflip=False))
    loader = build_train_loader(data, paths, image_size=32, batch_size=8, tokenize=TOKENIZE, seed=0, epoch_samples=40)
    batches = take(loader, 5)
    got = {k: c for b in batches for k, c in zip(b["key"], b["caption"])}
    assert got == written
    for batch in batches:
        assert batch["image"].shape == (8, 3, 32, 32)
        for key, caption, prompts in zip(batch["key"], batch["caption"], batch["prompts"]):
            expected = {f"a photo of a {n}." for n in nouns[key]}
            assert set(TOKENIZE.decode(prompts)) - {caption} <= expected
    assert loader.counters()["samples"] == 40
