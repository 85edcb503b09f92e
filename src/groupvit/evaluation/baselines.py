"""Non-parametric grouping baselines on a plain ViT (paper Table 5: pixel-wise, K-means, mean-shift, spectral).

The ViT's final patch tokens of each image are clustered; each cluster's mean token is projected into the text
space (`model.project_image`) and named exactly like a GroupViT group, with the same top-k gate and background
rule. The clusters become a one-hot pixel_to_group map, so everything after grouping is shared code.
"""
from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from groupvit.evaluation.config import EvalConfig
from groupvit.evaluation.grouping import Groups

METHODS = ("pixelwise", "kmeans", "meanshift", "spectral")
MEMO_IMAGES = 4096  # clusterings kept (a few KB each): a split's scoring pass, for its oracle pass


def _contiguous(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..K-1 (clusterers may leave unused ids), keeping the order of the original ids."""
    return np.unique(labels, return_inverse=True)[1].reshape(-1).astype(np.int64)


def kmeans_labels(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(x)))
    if k == 1:
        return np.zeros(len(x), np.int64)
    with warnings.catch_warnings():  # duplicate points -> fewer distinct clusters: fine, relabelled below
        warnings.simplefilter("ignore")
        labels = KMeans(n_clusters=k, n_init="auto", random_state=seed).fit_predict(x)
    return _contiguous(labels)


def mean_shift(x: np.ndarray, bandwidth: float, max_iter: int = 300) -> np.ndarray:
    """Flat-kernel mean-shift with every point as a seed: scikit-learn's MeanShift(bin_seeding=False) algorithm,
    vectorised over seeds.

    sklearn runs one Python loop per seed with a radius query per step (about 55 s for the 784 tokens of a
    448 px image); binned seeding is fast but in a few hundred dimensions puts every point into one bin. Same
    rules as sklearn: a seed moves to the mean of the points within `bandwidth` until it moves less than
    1e-3 x bandwidth (or max_iter); modes are ranked by how many points they hold, a mode within `bandwidth`
    of a stronger one is dropped, and every point joins its nearest remaining mode.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    sq_bw, stop = bandwidth * bandwidth, 1e-3 * bandwidth
    x_sq = (x * x).sum(1)
    modes, counts = x.copy(), np.zeros(n, np.int64)
    active = np.arange(n)
    for _ in range(max_iter + 1):
        if active.size == 0:
            break
        seeds = modes[active]
        within = ((seeds * seeds).sum(1)[:, None] + x_sq[None] - 2 * seeds @ x.T) <= sq_bw
        cnt = within.sum(1)
        counts[active] = cnt
        new = (within.astype(np.float64) @ x) / np.maximum(cnt, 1)[:, None]
        new[cnt == 0] = seeds[cnt == 0]
        moved = np.linalg.norm(new - seeds, axis=1)
        modes[active] = new
        active = active[(cnt > 0) & (moved > stop)]
    keep = counts > 0
    cand, strength = modes[keep], counts[keep]
    order = np.lexsort((np.arange(len(cand)), -strength))  # strongest first, ties by seed order
    cand = cand[order]
    unique = np.ones(len(cand), bool)
    for i in range(len(cand)):
        if unique[i]:
            near = ((cand - cand[i]) ** 2).sum(1) <= sq_bw
            unique[near] = False
            unique[i] = True
    centers = cand[unique]
    dist = (x_sq[:, None] + (centers * centers).sum(1)[None] - 2 * x @ centers.T)
    return dist.argmin(1).astype(np.int64)


def meanshift_labels(x: np.ndarray, bandwidth: float = 0.0, quantile: float = 0.1, seed: int = 0) -> np.ndarray:
    """Mean-shift; bandwidth <= 0 estimates it per image (sklearn estimate_bandwidth at `quantile`)."""
    from sklearn.cluster import estimate_bandwidth

    if bandwidth <= 0:
        bandwidth = float(estimate_bandwidth(x, quantile=quantile, random_state=seed))
        if not np.isfinite(bandwidth) or bandwidth <= 0:
            # over `quantile` of the tokens share their exact feature (flat regions, padding): a tiny bandwidth
            # still separates distinct values instead of collapsing everything into one segment
            dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
            bandwidth = 1e-3 * float(dist[dist > 0].mean()) if np.any(dist > 0) else 0.0
    if not np.isfinite(bandwidth) or bandwidth <= 0:  # all features identical: one segment
        return np.zeros(len(x), np.int64)
    return _contiguous(mean_shift(x, bandwidth))


def spectral_labels(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Spectral clustering on an RBF affinity of the features (dense, always connected)."""
    from sklearn.cluster import SpectralClustering

    k = max(1, min(k, len(x) - 1))
    if k == 1:
        return np.zeros(len(x), np.int64)
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    med = float(np.median(sq[sq > 0])) if np.any(sq > 0) else 1.0
    affinity = np.exp(-sq / max(med, 1e-12))  # median heuristic: scale-free across feature norms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = SpectralClustering(n_clusters=k, affinity="precomputed", assign_labels="kmeans",
                                    random_state=seed).fit_predict(affinity)
    return _contiguous(labels)


def cluster_tokens(features: np.ndarray, method: str, cfg: EvalConfig) -> np.ndarray:
    """[N] segment id of each token of one image."""
    x = np.asarray(features, dtype=np.float64)
    if cfg.cluster_normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "pixelwise":
        return np.arange(len(x), dtype=np.int64)
    if method == "kmeans":
        return kmeans_labels(x, cfg.kmeans_k, cfg.cluster_seed)
    if method == "meanshift":
        return meanshift_labels(x, cfg.meanshift_bandwidth, cfg.meanshift_quantile, cfg.cluster_seed)
    if method == "spectral":
        return spectral_labels(x, cfg.spectral_k, cfg.cluster_seed)
    raise ValueError(f"unknown grouping baseline {method!r}; valid: {METHODS}")


def segments_from_labels(tokens: torch.Tensor, labels: list[torch.Tensor], grid: tuple[int, int]
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean token per segment, padded to the batch's largest segment count.

    tokens [B, N, C], labels: B tensors [N] with ids 0..K_b-1 -> (features [B, G, C], valid [B, G],
    one-hot pixel_to_group [B, G, h, w]).
    """
    b, n, c = tokens.shape
    g = max(int(lab.max()) + 1 for lab in labels)
    feats = tokens.new_zeros(b, g, c)
    counts = tokens.new_zeros(b, g)
    onehot = tokens.new_zeros(b, g, n)
    for i, lab in enumerate(labels):
        lab = lab.to(tokens.device)
        feats[i].index_add_(0, lab, tokens[i].float())
        counts[i].index_add_(0, lab, torch.ones(n, device=tokens.device, dtype=tokens.dtype))
        onehot[i, lab, torch.arange(n, device=tokens.device)] = 1
    valid = counts > 0
    feats = feats / counts.clamp(min=1).unsqueeze(-1)
    return feats, valid, onehot.reshape(b, g, *grid)


class ClusterGrouper:
    """A plain ViT's tokens grouped by one of METHODS, as a `Grouper` for the ZeroShotSegmenter."""

    def __init__(self, model: nn.Module, method: str, cfg: EvalConfig) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown grouping baseline {method!r}; valid: {METHODS}")
        self.model, self.method, self.cfg = model, method, cfg
        self.name = f"vit_{method}"
        # an image's clusters by its tokens' bits: the oracle pass meets the scoring pass's tokens again
        self._labels: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    def labels(self, tokens: np.ndarray) -> torch.Tensor:
        """[N, C] tokens of one image -> [N] segment ids, each distinct token array clustered once."""
        key = hashlib.sha1(tokens.tobytes()).digest() + str(tokens.shape).encode()
        if key not in self._labels:
            self._labels[key] = torch.from_numpy(cluster_tokens(tokens, self.method, self.cfg))
            if len(self._labels) > MEMO_IMAGES:
                self._labels.popitem(last=False)
        return self._labels[key]

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> Groups:
        tokens, grid = self.model.encode_image_tokens(images)
        grid = (int(grid[0]), int(grid[1]))
        if self.method == "pixelwise":  # no clustering: skip the host round trip
            labels = [torch.arange(tokens.shape[1]) for _ in range(tokens.shape[0])]
        else:
            host = tokens.detach().float().cpu().numpy()
            labels = [self.labels(t) for t in host]
        feats, valid, p2g = segments_from_labels(tokens.float(), labels, grid)
        group_embeds = F.normalize(self.model.project_image(feats).float(), dim=-1)
        image_embed = F.normalize(self.model.encode_image(images).float(), dim=-1)
        return Groups(image_embed=image_embed, group_embeds=group_embeds, pixel_to_group=p2g, group_valid=valid)
