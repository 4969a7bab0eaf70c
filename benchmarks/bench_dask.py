"""Dask: grid search on 1 vs 2 workers, and chunked batch prediction local vs cluster.

Grid search: ``GridSearchCV`` over an ``OtsuMasker -> TransferClassifier``
(``small_cnn``) pipeline on synthetic images, run through joblib's Dask
backend on two loopback ``LocalCluster``s started side by side, one with one
worker and one with two (one thread each, so one torch thread per fit). The
clusters are started and warmed up (torch imported on every worker) before
timing; the two searches alternate ``--repeats`` times and the medians are
compared. Their ``cv_results_`` must be identical.

Batch prediction: a fitted ``ImageLoader -> OtsuMasker -> TransferClassifier``
pipeline predicts ``--n-files`` PNG files with
:func:`skcxr.parallel.map_in_chunks`, in this process (``client=None``, with
torch's default threads and with one thread) and on the two-worker cluster;
results must agree.

The ratios mean something only on an otherwise idle machine: the load average
is printed next to them.

Run: ``python benchmarks/bench_dask.py`` (``--quick`` for a smaller run)
"""

import argparse
import os
import tempfile
import time

import joblib
import numpy as np
import torch
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skcxr import ImageLoader, OtsuMasker, TransferClassifier
from skcxr.datasets import make_chest_xrays, write_chest_xrays
from skcxr.parallel import TorchThreads, map_in_chunks


def _transfer(epochs):
    return TransferClassifier(
        backbone="small_cnn",
        weights=None,
        max_epochs=epochs,
        batch_size=16,
        device="cpu",
        random_state=0,
    )


def _cluster(n_workers):
    cluster = LocalCluster(
        n_workers=n_workers,
        processes=True,
        threads_per_worker=1,
        dashboard_address=":0",  # any free port: two clusters side by side
        host="127.0.0.1",
    )
    client = Client(cluster, set_as_default=False)
    client.register_plugin(TorchThreads())
    client.run(_warm_up)
    return cluster, client


def _warm_up():
    """A tiny fit on a worker, outside the timings (imports, first torch calls)."""
    X, y = make_chest_xrays(16, size=32, random_state=0)
    make_pipeline(OtsuMasker(), _transfer(1)).fit(X, y).predict_proba(X)


def _search(client, X, y, args):
    grid = {"transferclassifier__lr": list(np.geomspace(3e-4, 3e-2, args.candidates))}
    search = GridSearchCV(
        make_pipeline(OtsuMasker(), _transfer(args.epochs)),
        grid,
        cv=2,
        scoring="neg_log_loss",
        refit=False,
        n_jobs=-1,
    )
    with joblib.parallel_config(backend="dask", client=client):
        start = time.perf_counter()
        search.fit(X, y)
        return time.perf_counter() - start, search.cv_results_["mean_test_score"]


def bench_grid_search(clusters, args):
    X, y = make_chest_xrays(args.n_images, size=args.size, random_state=0)
    times = {n: [] for n in clusters}
    scores = {}
    for _ in range(args.repeats):  # alternate the two clusters
        for n_workers, (_, client) in clusters.items():
            seconds, scores[n_workers] = _search(client, X, y, args)
            times[n_workers].append(seconds)
    np.testing.assert_array_equal(scores[1], scores[2])
    one, two = np.median(times[1]), np.median(times[2])
    n_fits = 2 * args.candidates
    print(
        f"grid search, {n_fits} fits of small_cnn on {args.n_images} images of "
        f"{args.size} px, {args.epochs} epochs (median of {args.repeats}):"
    )
    print(f"  1 worker : {one:7.2f} s")
    print(f"  2 workers: {two:7.2f} s")
    print(f"  speed-up 2 vs 1 worker: {one / two:.2f}x (cv_results_ identical)")


def bench_batch_prediction(client, args):
    X, y = make_chest_xrays(args.n_files, size=args.size, random_state=1)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as root:
        paths = write_chest_xrays(root, X, y, fmt="png", random_state=0)
        model = make_pipeline(
            ImageLoader(size=args.size), OtsuMasker(), _transfer(args.epochs)
        ).fit(paths[:200], y[:200])
        map_in_chunks(model, paths[:50], client=client)  # ship code, warm up
        times = {"local": [], "local, 1 thread": [], "cluster": []}
        for _ in range(args.repeats):  # interleaved
            for name in times:
                torch.set_num_threads(1 if name == "local, 1 thread" else threads)
                start = time.perf_counter()
                out = map_in_chunks(
                    model,
                    paths,
                    client=client if name == "cluster" else None,
                    chunk_size=args.chunk_size,
                )
                times[name].append(time.perf_counter() - start)
                if name == "local":
                    reference = out
                np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6)
        torch.set_num_threads(threads)
    median = {name: np.median(t) for name, t in times.items()}
    print(
        f"batch prediction (predict_proba) of {args.n_files} PNG files of "
        f"{args.size} px, chunks of {args.chunk_size} (median of {args.repeats}):"
    )
    labels = {
        "local": f"this process, {threads} torch threads",
        "local, 1 thread": "this process, 1 torch thread",
        "cluster": "2 Dask workers, 1 thread each",
    }
    for name, seconds in median.items():
        print(
            f"  {labels[name]:32s}: {seconds:7.2f} s "
            f"({args.n_files / seconds:6.0f} img/s)"
        )
    print(
        f"  2 workers vs this process: {median['local'] / median['cluster']:.2f}x; "
        f"vs 1 thread: {median['local, 1 thread'] / median['cluster']:.2f}x"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-images", type=int, default=160)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--n-files", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.n_images, args.size, args.epochs, args.candidates = 64, 32, 2, 2
        args.n_files, args.chunk_size, args.repeats = 400, 64, 1
    print(f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f}")
    clusters = {n: _cluster(n) for n in (1, 2)}
    try:
        bench_grid_search(clusters, args)
        bench_batch_prediction(clusters[2][1], args)
    finally:
        for cluster, client in clusters.values():
            client.close()
            cluster.close()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
