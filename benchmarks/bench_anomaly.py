"""Anomaly detection from healthy images: every method against the baselines.

Fits each detector on healthy synthetic chest X-rays (``make_chest_xrays``,
64 px) and reports the ROC AUC healthy vs sick (bacterial or viral pneumonia)
on three test sets: the same generator at ``difficulty`` 0.3 and 0.7 (each with
its own healthy training set) and the 0.3 test set shifted beyond anything seen
in training (per image: gamma in [0.6, 1.6], contrast scaled by [0.7, 1.3]
around the mean, Gaussian noise of sd 0.03 and a shift of up to 5 pixels).
Also: fit time, predict time per image, the pointing game of the anomaly
maps (share of sick images whose map maximum falls inside the lesion, with
the chance rate), sensitivity/specificity at the thresholds, logistic
regression on ``transform`` features, and the few-shot comparison with a
supervised classifier trained on 5, 20 and 100 sick images.

Baselines: ``CNNEmbedder()`` (``efficientnet_lite0``, ImageNet weights) followed
by ``IsolationForest``, ``LocalOutlierFactor(novelty=True)`` or the
Ledoit-Wolf Mahalanobis distance.

Run: ``python benchmarks/bench_anomaly.py [--n-train 100 --n-test 150 --quick]``
"""

import argparse
import time

import numpy as np
import torch
from scipy import ndimage
from sklearn.covariance import LedoitWolf
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcxr import CNNEmbedder, ReconstructionAnomalyDetector
from skcxr.datasets import make_chest_xrays
from skcxr.inspection import pointing_game

DETECTORS = {
    "padim (default)": dict(),
    "padim, no alignment": dict(align=False),
    "padim, whole image": dict(region="image"),
    "padim, percentile normalisation": dict(normalize="percentile"),
    "patchcore": dict(method="patchcore"),
    "autoencoder mse (old default)": dict(method="autoencoder"),
    "autoencoder masked_mse": dict(method="autoencoder", error="masked_mse"),
}
BASELINES = {
    "CNNEmbedder + IsolationForest": lambda: IsolationForest(random_state=0),
    "CNNEmbedder + LOF(novelty)": lambda: LocalOutlierFactor(novelty=True),
    "CNNEmbedder + Ledoit-Wolf Mahalanobis": LedoitWolf,
}


def shift(images, seed=0):
    """Exposure, contrast, noise and position changed beyond the training set."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    for i, img in enumerate(images):
        img = img ** rng.uniform(0.6, 1.6)
        img = (img - img.mean()) * rng.uniform(0.7, 1.3) + img.mean()
        img = img + rng.normal(0, 0.03, img.shape)
        img = ndimage.shift(img, rng.uniform(-5, 5, 2), order=1, mode="nearest")
        out[i] = np.clip(img, 0, 1)
    return out


def _anomaly_of(model, name, X):
    if name.startswith("CNNEmbedder"):
        emb, det = model
        Z = emb.transform(X)
        if isinstance(det, LedoitWolf):
            return det.mahalanobis(Z)
        return -det.score_samples(Z)
    return -model.score_samples(X)


def _fit(name, Xtr, seed):
    if name in BASELINES:
        emb = CNNEmbedder().fit(Xtr)
        return emb, BASELINES[name]().fit(emb.transform(Xtr))
    return ReconstructionAnomalyDetector(random_state=seed, **DETECTORS[name]).fit(Xtr)


def data(difficulty, n_train, n_test, size, seed):
    Xtr, _ = make_chest_xrays(
        n_train,
        classes=("normal",),
        size=size,
        difficulty=difficulty,
        random_state=seed,
    )
    Xte, yte, masks = make_chest_xrays(
        n_test,
        size=size,
        difficulty=difficulty,
        return_masks=True,
        random_state=seed + 1,
    )
    return Xtr, Xte, yte, masks


def main(args):
    torch.set_num_threads(args.threads)
    names = list(DETECTORS) + list(BASELINES)
    if args.only:
        names = [n for n in names if any(o in n for o in args.only)]
    sets = {}
    for d in (0.3, 0.7):
        sets[d] = data(d, args.n_train, args.n_test, args.size, args.seed)
    Xtr3, Xte3, yte3, m3 = sets[0.3]
    sets["0.3 shifted"] = (Xtr3, shift(Xte3, args.seed), yte3, m3)
    rows, fitted = [], {}
    for key, (Xtr, Xte, yte, masks) in sets.items():
        sick = yte != "normal"
        for name in names:
            if (name, id(Xtr)) in fitted:
                model, fit_s = fitted[name, id(Xtr)]
            else:
                t = time.perf_counter()
                model = _fit(name, Xtr, args.seed)
                fit_s = time.perf_counter() - t
                fitted[name, id(Xtr)] = model, fit_s
            t = time.perf_counter()
            anomaly = _anomaly_of(model, name, Xte)
            pred_ms = 1000 * (time.perf_counter() - t) / len(Xte)
            row = dict(
                test=str(key),
                method=name,
                auc=roc_auc_score(sick, anomaly),
                auc_bacteria=roc_auc_score(
                    sick[yte != "virus"], anomaly[yte != "virus"]
                ),
                auc_virus=roc_auc_score(
                    sick[yte != "bacteria"], anomaly[yte != "bacteria"]
                ),
                fit_s=fit_s,
                predict_ms=pred_ms,
            )
            if not name.startswith("CNNEmbedder"):
                maps = model.anomaly_map(Xte[sick])
                pg = pointing_game(maps, masks[sick], tolerance=2)
                pg_lungs = pointing_game(
                    maps, masks[sick], tolerance=2, region=model.mask_
                )
                row.update(
                    pointing=pg.score, chance=pg.chance, chance_lungs=pg_lungs.chance
                )
                flagged = model.predict(Xte) == -1
                row.update(
                    sens_mean=flagged[sick].mean(), spec_mean=(~flagged[~sick]).mean()
                )
            rows.append(row)
            print(_fmt(row), flush=True)
    print(
        "\n| test set | method | ROC AUC | AUC bacteria | AUC virus | pointing game (chance image / lungs) | fit s | predict ms/img |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        pg = (
            f"{r['pointing']:.2f} ({r['chance']:.2f} / {r['chance_lungs']:.2f})"
            if "pointing" in r
            else ""
        )
        print(
            f"| {r['test']} | {r['method']} | {r['auc']:.3f} | {r['auc_bacteria']:.3f} | "
            f"{r['auc_virus']:.3f} | {pg} | {r['fit_s']:.1f} | {r['predict_ms']:.1f} |"
        )
    if not args.quick:
        thresholds(sets[0.3], args)
        features_for_classifier(sets[0.3], args)
        few_shot(sets[0.3], args)


def _fmt(row):
    return "  ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
    )


def thresholds(dataset, args):
    """Sensitivity/specificity at each threshold rule; 'youden' on 20 validation images."""
    Xtr, Xte, yte, _ = dataset
    Xval, yval = make_chest_xrays(
        20, size=args.size, difficulty=0.3, random_state=args.seed + 2
    )
    yval = np.where(yval == "normal", 1, -1)
    sick = yte != "normal"
    print("\n| threshold | sensitivity (test) | specificity (test) |")
    print("|---|---|---|")
    for thr in ("mean", 0.05, "youden"):
        det = ReconstructionAnomalyDetector(threshold=thr, random_state=args.seed)
        det.fit(Xtr, X_val=Xval, y_val=yval)
        flagged = det.predict(Xte) == -1
        print(
            f"| {thr} | {flagged[sick].mean():.2f} | {(~flagged[~sick]).mean():.2f} |"
        )


def features_for_classifier(dataset, args):
    """5-fold CV accuracy of a logistic regression on transform() features (test set)."""
    Xtr, Xte, yte, _ = dataset
    sick = (yte != "normal").astype(int)
    print("\n| transform features | dims | LR 5-fold ROC AUC healthy vs sick |")
    print("|---|---|---|")
    for name, params in [
        ("autoencoder codes", dict(method="autoencoder")),
        ("padim pooled patch features", dict()),
    ]:
        det = ReconstructionAnomalyDetector(random_state=args.seed, **params).fit(Xtr)
        Z = det.transform(Xte)
        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        auc = cross_val_score(pipe, Z, sick, cv=5, scoring="roc_auc").mean()
        print(f"| {name} | {Z.shape[1]} | {auc:.3f} |")


def few_shot(dataset, args):
    """Unsupervised detector vs a supervised classifier on 5/20/100 sick images."""
    Xtr, Xte, yte, _ = dataset
    sick = yte != "normal"
    Xsick, ysick = make_chest_xrays(
        200,
        classes=("bacteria", "virus"),
        size=args.size,
        difficulty=0.3,
        random_state=args.seed + 3,
    )
    det = ReconstructionAnomalyDetector(random_state=args.seed).fit(Xtr)
    print("\n| model | sick training images | ROC AUC |")
    print("|---|---|---|")
    print(
        f"| padim (unsupervised) | 0 | {roc_auc_score(sick, -det.score_samples(Xte)):.3f} |"
    )
    emb = CNNEmbedder().fit(Xtr)
    Ztr, Zte, Zs = emb.transform(Xtr), emb.transform(Xte), emb.transform(Xsick)
    rng = np.random.default_rng(args.seed)
    for k in (5, 20, 100):
        aucs = []
        for _ in range(5):
            idx = rng.choice(len(Zs), k, replace=False)
            Z = np.r_[Ztr, Zs[idx]]
            y = np.r_[np.zeros(len(Ztr)), np.ones(k)]
            clf = make_pipeline(
                StandardScaler(),
                LogisticRegression(max_iter=2000, class_weight="balanced"),
            ).fit(Z, y)
            aucs.append(roc_auc_score(sick, clf.predict_proba(Zte)[:, 1]))
        print(
            f"| CNNEmbedder + LogisticRegression (supervised) | {k} | "
            f"{np.mean(aucs):.3f} +- {np.std(aucs):.3f} (5 draws) |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=150)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="substrings of method names to run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="only the AUC table")
    main(parser.parse_args())
