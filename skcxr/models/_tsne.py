"""t-SNE as a scikit-learn transformer that can place new points on its map."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ..utils._param_validation import IntInterval
from ..utils._random import seed_from

__all__ = ["TSNE"]


class TSNE(TransformerMixin, BaseEstimator):
    """t-SNE map of embeddings that new samples can be added to, via openTSNE.

    Unlike :class:`sklearn.manifold.TSNE`, which only has ``fit_transform``,
    this transformer keeps the fitted map: :meth:`transform` places new
    samples on it without moving the training points (openTSNE's
    ``TSNEEmbedding.transform``: each new point starts at the median of its
    nearest training points and is optimised against the fixed map). So a
    ``Pipeline`` of :class:`~skcxr.CNNEmbedder` and ``TSNE`` can draw a map
    of the training images and show where a new image lands.

    Input is any 2-D float array (for example CNN embeddings), not images.

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the map.
    perplexity : float, default=30
        Effective number of neighbours each point attends to. Must be smaller
        than the number of training samples (a ``ValueError`` otherwise). When
        ``3 * perplexity`` exceeds ``n_samples - 1``, it is lowered to
        ``(n_samples - 1) / 3`` as openTSNE does; the value used is stored
        in ``effective_perplexity_``.
    learning_rate : float or "auto", default="auto"
        ``"auto"`` uses ``max(n_samples / early_exaggeration, 50)`` (openTSNE).
    early_exaggeration_iter : int, default=250
        Iterations of the early exaggeration phase.
    early_exaggeration : float or "auto", default="auto"
        Exaggeration of the first phase; ``"auto"`` is 12, or less for very
        large data (openTSNE).
    n_iter : int, default=500
        Iterations of the main phase.
    metric : str, default="euclidean"
        Distance between input samples (any metric openTSNE's neighbour
        search supports, such as "cosine").
    initialization : {"pca", "spectral", "random"}, default="pca"
        Initial positions of the training points.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and the approximate neighbour search.
    n_jobs : int, default=1
        Threads openTSNE uses; -1 means all cores.
    verbose : bool, default=False
        Print openTSNE's progress.

    Attributes
    ----------
    embedding_ : ndarray of shape (n_samples, n_components), dtype float32
        The map of the training samples.
    opentsne_embedding_ : openTSNE.TSNEEmbedding
        The fitted openTSNE object (holds the neighbour index and
        affinities that :meth:`transform` needs).
    effective_perplexity_ : float
        The perplexity actually used for the training map.
    kl_divergence_ : float
        Final Kullback-Leibler divergence of the training map.
    n_features_in_ : int
        Number of input features.

    See Also
    --------
    skcxr.CNNEmbedder : Images to embeddings, the usual input of this map.
    sklearn.manifold.TSNE : t-SNE without ``transform``.

    Notes
    -----
    :meth:`transform` uses openTSNE's settings for adding points (perplexity
    5, 25 initial neighbours, 250 iterations, both capped for tiny training
    sets). ``fit_transform(X)`` returns the training map; ``transform(X)``
    of the same ``X`` returns nearby, not identical, positions, because
    transform places points on a map they are not part of.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr import TSNE
    >>> X = np.random.default_rng(0).random((40, 8))
    >>> tsne = TSNE(perplexity=5, n_iter=100, random_state=0).fit(X)
    >>> tsne.embedding_.shape, tsne.embedding_.dtype
    ((40, 2), dtype('float32'))
    >>> tsne.transform(X[:3] + 0.01).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        "n_components": [IntInterval(1, None, closed="left")],
        "perplexity": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "early_exaggeration_iter": [IntInterval(0, None, closed="left")],
        "early_exaggeration": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "n_iter": [IntInterval(0, None, closed="left")],
        "metric": [str],
        "initialization": [StrOptions({"pca", "spectral", "random"})],
        "random_state": ["random_state"],
        "n_jobs": [Integral],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        n_components=2,
        perplexity=30.0,
        learning_rate="auto",
        early_exaggeration_iter=250,
        early_exaggeration="auto",
        n_iter=500,
        metric="euclidean",
        initialization="pca",
        random_state=None,
        n_jobs=1,
        verbose=False,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.learning_rate = learning_rate
        self.early_exaggeration_iter = early_exaggeration_iter
        self.early_exaggeration = early_exaggeration
        self.n_iter = n_iter
        self.metric = metric
        self.initialization = initialization
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute the t-SNE map of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to map, such as embeddings from :class:`~skcxr.CNNEmbedder`.
        y : None
            Ignored.

        Returns
        -------
        self : TSNE
        """
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Compute the t-SNE map of ``X`` and return it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_components), dtype float32
            The training map, ``embedding_``.
        """
        return self._fit(X).embedding_.copy()

    def _fit(self, X):
        import openTSNE

        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2, reset=True)
        n_samples = X.shape[0]
        if self.perplexity >= n_samples:
            raise ValueError(
                f"perplexity={self.perplexity} must be smaller than the number of "
                f"samples ({n_samples}); use a perplexity of at most "
                f"{(n_samples - 1) / 3:.3g} for this many samples."
            )
        perplexity = min(float(self.perplexity), (n_samples - 1) / 3)
        tsne = openTSNE.TSNE(
            n_components=self.n_components,
            perplexity=perplexity,
            learning_rate=self.learning_rate,
            early_exaggeration_iter=self.early_exaggeration_iter,
            early_exaggeration=self.early_exaggeration,
            n_iter=self.n_iter,
            metric=self.metric,
            initialization=self.initialization,
            # Barnes-Hut works in any dimension; FFT only in one or two
            negative_gradient_method="auto" if self.n_components <= 2 else "bh",
            random_state=seed_from(self.random_state),
            n_jobs=self.n_jobs,
            verbose=bool(self.verbose),
        )
        embedding = tsne.fit(X)
        # openTSNE's transform first centres the map on its bounding box, in
        # place; centring it now keeps embedding_ and the points transform
        # places in one frame, and transform leaves the fitted map unchanged
        embedding -= (embedding.max(axis=0) + embedding.min(axis=0)) / 2
        self.opentsne_embedding_ = embedding
        self.embedding_ = np.asarray(embedding, dtype=np.float32)
        self.effective_perplexity_ = perplexity
        self.kl_divergence_ = float(embedding.kl_divergence)
        return self

    def transform(self, X):
        """Place new samples on the fitted map (the training points stay put).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_components), dtype float32
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        n_train = self.embedding_.shape[0]
        placed = self.opentsne_embedding_.transform(
            X,
            perplexity=min(5.0, (n_train - 1) / 3),
            k=min(25, n_train),
        )
        return np.asarray(placed, dtype=np.float32)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
