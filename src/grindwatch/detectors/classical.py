"""Classical detectors on window features: isolation forest, PCA and kNN."""

from __future__ import annotations

import logging

import numpy as np

from grindwatch.detectors.base import BaseDetector, EpochCallback
from grindwatch.exceptions import ConfigError

__all__ = ["IsolationForestDetector", "KNNDetector", "PCADetector"]

logger = logging.getLogger(__name__)


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(X.shape[0], -1)


def _digests(flat: np.ndarray) -> np.ndarray:
    """Return a 64-bit BLAKE2b digest of each row's bytes, the same in every process."""
    import hashlib

    rows = np.ascontiguousarray(flat)
    return np.array(
        [
            int.from_bytes(
                hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little"
            )
            for row in rows
        ],
        dtype=np.uint64,
    )


class IsolationForestDetector(BaseDetector):
    """Isolation forest; the score is the negated scikit-learn ``score_samples``.

    Parameters
    ----------
    n_estimators : int
        Number of trees.
    max_samples : int or "auto"
        Windows drawn to build each tree.
    random_state : int
    """

    family = "iforest"

    def __init__(
        self,
        n_estimators: int = 200,
        max_samples: int | str = "auto",
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state

    def _fit(self, X: np.ndarray, on_epoch: EpochCallback | None) -> None:
        from sklearn.ensemble import IsolationForest

        max_samples = self.max_samples
        if isinstance(max_samples, int) and max_samples > X.shape[0]:
            max_samples = X.shape[0]  # scikit-learn would warn and clamp the same way
        flat = _flat(X)
        if not np.ptp(flat, axis=0).any():
            # Trees of identical windows have no split, so every window, however
            # far off, gets the same score as the training windows.
            logger.warning(
                "iforest: all %d training windows are identical, so every window "
                "will score the same and none will be flagged; use pca or knn, "
                "which flag any departure from these windows",
                X.shape[0],
            )
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=max_samples,
            random_state=self.random_state,
        ).fit(flat)
        self._fit_spread(X)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self.forest_.score_samples(_flat(X))


# Folds for the out-of-fold training scores of PCA (fewer with fewer windows).
_PCA_FOLDS = 5


class PCADetector(BaseDetector):
    """Reconstruction error of a principal-component projection.

    Parameters
    ----------
    n_components : float or int
        A float in (0, 1) keeps the components explaining that share of variance;
        an int keeps that many.
    random_state : int
    """

    family = "pca"

    def __init__(self, n_components: float | int = 0.9, random_state: int = 0) -> None:
        self.n_components = n_components
        self.random_state = random_state

    def _fit(self, X: np.ndarray, on_epoch: EpochCallback | None) -> None:
        from sklearn.decomposition import PCA

        flat = _flat(X)
        n_components = self.n_components
        limit = min(flat.shape) - 1
        if isinstance(n_components, int) and n_components > limit:
            raise ConfigError(
                f"n_components={n_components} is too many for {flat.shape[0]} windows "
                f"of {flat.shape[1]} values; use at most {limit} or a variance share "
                "such as 0.9"
            )
        self.pca_ = PCA(n_components=n_components, random_state=self.random_state)
        self.pca_.fit(flat)
        # Centred training data spans at most rank dimensions. Components that
        # span all of them rebuild every window up to rounding, so the scores
        # would be float noise (about 1e-15): keep one dimension out instead.
        rank = min(flat.shape[0] - 1, flat.shape[1])
        if self.pca_.n_components_ >= rank > 1:
            reduced_components = rank - 1
            self.pca_ = PCA(
                n_components=reduced_components, random_state=self.random_state
            )
            self.pca_.fit(flat)
            share = float(self.pca_.explained_variance_ratio_.sum())
            logger.warning(
                "pca: n_components=%s keeps all %d dimensions of the training "
                "windows, which leaves no reconstruction error to score; using "
                "%d components (%.1f%% of the variance). Set fewer components or "
                "a lower variance share.",
                n_components,
                rank,
                reduced_components,
                100 * share,
            )
        self.n_components_ = int(self.pca_.n_components_)

    def _residual(self, X: np.ndarray) -> np.ndarray:
        flat = _flat(X)
        rebuilt = self.pca_.inverse_transform(self.pca_.transform(flat))
        return (flat - rebuilt).reshape(X.shape)

    def _training_scores(self, X: np.ndarray) -> np.ndarray:
        """Score each training window with a PCA fitted on the other folds.

        Components fitted to a window rebuild part of its noise too, so its own
        reconstruction error is lower than that of a new window from the same
        process. On 100 raw windows of a noisy sine (2 x 256 samples), windows
        of new normal recordings scored 0.091 against 0.058 for the training
        windows, and a threshold on the latter flagged all of them. Each fold
        model keeps the final model's number of components, or fewer where its
        windows span fewer dimensions. Each of the five fold models is fitted
        to 80 % of the windows, so this step takes a few times longer than the
        fit itself.
        """
        from sklearn.decomposition import PCA
        from sklearn.model_selection import KFold

        flat = _flat(X)
        n_folds = min(_PCA_FOLDS, flat.shape[0])
        folds = KFold(n_folds, shuffle=True, random_state=self.random_state)
        scores = np.empty(flat.shape[0], dtype=np.float64)
        for fit_rows, held_out in folds.split(flat):
            rank = min(fit_rows.size - 1, flat.shape[1])
            n_components = min(self.n_components_, rank - 1 if rank > 1 else rank)
            if n_components == 0:
                # One window, or identical ones: the rebuild is their mean.
                rebuilt = flat[fit_rows].mean(axis=0, keepdims=True)
            else:
                # The exact solver: for many components scikit-learn's default
                # picks the randomized one, which took twice as long on 4,000
                # windows of 2,048 values (1,351 components).
                pca = PCA(n_components=n_components, svd_solver="full")
                # Folds of identical windows have no variance to share out.
                with np.errstate(invalid="ignore", divide="ignore"):
                    pca.fit(flat[fit_rows])
                rebuilt = pca.inverse_transform(pca.transform(flat[held_out]))
            scores[held_out] = ((flat[held_out] - rebuilt) ** 2).mean(axis=1)
        self._remember_training_scores(flat, scores)
        return scores

    def _remember_training_scores(self, flat: np.ndarray, scores: np.ndarray) -> None:
        """Store each training window's out-of-fold score under a digest of it.

        Scoring the training recordings again, as ``train`` does for its report
        and its warnings, then gives the scores the threshold came from rather
        than the lower ones of windows the components were fitted to (see
        ``_contributions``). The digests
        take 16 bytes per window, where the windows themselves would take their
        full size.
        """
        digests = _digests(flat)
        order = np.argsort(digests, kind="stable")
        self.training_digests_ = digests[order]
        self.training_digest_scores_ = scores[order]

    def _contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the squared residual of each element and each window's score.

        Training windows get their out-of-fold score, and their squared residuals
        are scaled to average to it (spread evenly where the components rebuild
        the window exactly). Their explanation then agrees with their score, and
        the attribution baseline, a mean over training windows, matches new
        windows of the same process.
        """
        contributions = self._residual(X) ** 2
        scores = contributions.mean(axis=(1, 2), dtype=np.float64)
        known = getattr(self, "training_digests_", None)
        if known is None or known.size == 0:
            return contributions, scores
        digests = _digests(_flat(X))
        positions = np.minimum(np.searchsorted(known, digests), known.size - 1)
        matched = np.flatnonzero(known[positions] == digests)
        if matched.size == 0:
            return contributions, scores
        out_of_fold = self.training_digest_scores_[positions[matched]]
        in_sample = scores[matched]
        rebuilt_exactly = in_sample <= 0
        factor = out_of_fold / np.where(rebuilt_exactly, 1.0, in_sample)
        factor[rebuilt_exactly] = 0.0
        even = np.where(rebuilt_exactly, out_of_fold, 0.0)
        contributions[matched] = (
            contributions[matched] * factor[:, None, None] + even[:, None, None]
        )
        # The exact float64 score, which the float32 contributions average to only
        # up to rounding.
        scores[matched] = out_of_fold
        return contributions, scores

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._contributions(X)[1]

    def _explain(self, X: np.ndarray) -> np.ndarray:
        return self._contributions(X)[0]

    def _score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # One projection: the score is the mean of the squared residual.
        contributions, scores = self._contributions(X)
        return scores, contributions


class KNNDetector(BaseDetector):
    """Mean distance to the k nearest training windows.

    Parameters
    ----------
    n_neighbors : int
        Neighbours averaged. Clamped to the number of training windows minus one,
        with a warning; the value used is stored in ``n_neighbors_``.
    """

    family = "knn"

    def __init__(self, n_neighbors: int = 5) -> None:
        self.n_neighbors = n_neighbors

    def _fit(self, X: np.ndarray, on_epoch: EpochCallback | None) -> None:
        import warnings

        from sklearn.neighbors import NearestNeighbors

        self.n_neighbors_ = min(self.n_neighbors, X.shape[0] - 1)
        if self.n_neighbors_ < self.n_neighbors:
            warnings.warn(
                f"n_neighbors={self.n_neighbors} exceeds the {X.shape[0]} training "
                f"windows; using {self.n_neighbors_}",
                UserWarning,
                stacklevel=3,
            )
        self.train_ = _flat(X).copy()
        self.index_ = NearestNeighbors(n_neighbors=self.n_neighbors_ + 1).fit(
            self.train_
        )

    def _neighbours(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Find the k nearest training windows of each window: distances and indices.

        A window equal to its nearest training window is matched against the
        other training windows, as in training, so that scoring the training data
        again reproduces the scores its threshold came from.
        """
        flat = _flat(X)
        distances, indices = self.index_.kneighbors(flat, self.n_neighbors_ + 1)
        # Compare values, not distances: float32 distances of a row to itself
        # come out as a few 1e-6 rather than 0.
        itself = (self.train_[indices[:, 0]] == flat).all(axis=1)[:, None]
        return (
            np.where(itself, distances[:, 1:], distances[:, :-1]),
            np.where(itself, indices[:, 1:], indices[:, :-1]),
        )

    def _score(self, X: np.ndarray) -> np.ndarray:
        # _neighbours skips a training window's match with itself, so the base
        # class can take the training scores from here too.
        return self._neighbours(X)[0].mean(axis=1)

    def _explain(self, X: np.ndarray) -> np.ndarray:
        _, neighbours = self._neighbours(X)
        centre = self.train_[neighbours].mean(axis=1)
        return ((_flat(X) - centre) ** 2).reshape(X.shape)
