"""The facts the runner reads before training: sample counts and content hashes of the training shards."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from groupvit.dataclass_io import ConfigError
from groupvit.config.experiment import ExperimentConfig
from groupvit.train.data_source import count_shard_samples, synthetic_train_data, train_data_for


def _tar(path, names):
    with tarfile.open(path, "w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))


def test_webdataset_counts_from_img2dataset_stats_or_tar_members(tmp_path):
    _tar(tmp_path / "00000.tar", ["a/000.jpg", "a/000.txt", "a/001.jpg", "a/001.txt", "002.jpg", "002.json"])
    assert count_shard_samples(str(tmp_path / "00000.tar")) == 3
    _tar(tmp_path / "00001.tar", ["x.jpg"])
    (tmp_path / "00001_stats.json").write_text(json.dumps({"successes": 7}))
    assert count_shard_samples(str(tmp_path / "00001.tar")) == 7

    cfg = ExperimentConfig()
    cfg.data.source, cfg.data.shards = "webdataset", [str(tmp_path / "{00000..00001}.tar")]
    data = train_data_for(cfg)
    assert data.num_samples == 10 and len(data.shards) == 2
    assert data.content_hash.startswith("names+sizes:")
    cfg.data.shards = [str(tmp_path / "{00000..00002}.tar")]
    with pytest.raises(ConfigError, match="data.shards"):
        train_data_for(cfg)


def test_synthetic_source_reads_the_data_card(tmp_path):
    with pytest.raises(ConfigError, match="generate the world first"):
        synthetic_train_data(ExperimentConfig(), tmp_path)
    (tmp_path / "train").mkdir()
    _tar(tmp_path / "train" / "shard-000000.tar", ["000000000.png"])
    card = {"content_hash": "abc", "splits": {"train": {"samples": 5, "shards": [{"path": "train/shard-000000.tar"}]}}}
    (tmp_path / "datacard.json").write_text(json.dumps(card))
    data = synthetic_train_data(ExperimentConfig(), tmp_path)
    assert (data.num_samples, data.content_hash) == (5, "abc")
    assert data.shards == [str(tmp_path / "train" / "shard-000000.tar")]
