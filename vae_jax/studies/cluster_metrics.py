"""Clustering and detection metrics on host arrays (NumPy / scikit-learn / SciPy).

Unsupervised clustering accuracy (Hungarian matching of clusters to classes; Xie et
al. 2016, eq. 10), NMI (arithmetic and geometric normalisation) and ARI
(scikit-learn), and AUROC for anomaly scores.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as sk_metrics


def confusion_matrix(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """counts[c, l] = #{i : clusters_i = c, labels_i = l}. labels, clusters: [N] ints.

    Returns [n, n] with n = max(#clusters, #classes), so the matching is square.
    """
    labels, clusters = np.asarray(labels, np.int64), np.asarray(clusters, np.int64)
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise ValueError(
            f"labels {labels.shape} and clusters {clusters.shape} must be [N]."
        )
    n = int(max(labels.max(), clusters.max())) + 1
    counts = np.zeros((n, n), np.int64)
    np.add.at(counts, (clusters, labels), 1)
    return counts


def cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """ACC = max_m (1/N) sum_i 1{l_i = m(c_i)} over one-to-one maps m (Xie et al. 2016,
    eq. 10), solved by the Hungarian algorithm. labels, clusters: [N] ints."""
    counts = confusion_matrix(labels, clusters)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def normalized_mutual_info(
    labels: np.ndarray, clusters: np.ndarray, average: str = "arithmetic"
) -> float:
    """NMI = I(Y; C) / mean(H(Y), H(C)) (Strehl & Ghosh 2002; scikit-learn).

    ``average="arithmetic"``: (H(Y) + H(C)) / 2, scikit-learn's default since 0.22;
    ``"geometric"``: sqrt(H(Y) H(C)), its default before 0.22, hence the NMI of the
    DEC-era papers and code (DEC-keras, IDEC). labels, clusters: [N] ints."""
    return float(
        sk_metrics.normalized_mutual_info_score(
            labels, clusters, average_method=average
        )
    )


def clustering_scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """{"acc", "nmi" (arithmetic normalisation), "nmi_geometric" (sqrt(H(Y) H(C)), as
    DEC-era papers report it), "ari"} of a clustering [N] against true labels [N]."""
    return {
        "acc": cluster_accuracy(labels, clusters),
        "nmi": normalized_mutual_info(labels, clusters, "arithmetic"),
        "nmi_geometric": normalized_mutual_info(labels, clusters, "geometric"),
        "ari": float(sk_metrics.adjusted_rand_score(labels, clusters)),
    }


def auroc(is_anomaly: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` [N] (higher = more anomalous) for the
    binary truth ``is_anomaly`` [N]; 1 = perfect ranking, 0.5 = chance."""
    return float(
        sk_metrics.roc_auc_score(np.asarray(is_anomaly, bool), np.asarray(scores))
    )
