"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs").

IS = exp(E_x KL(p(y|x) ‖ p(y))), with p(y|x) the softmax of the FID Inception's 1008 logits
*without* the fc bias (openai/improved-gan `inception_score/model.py` multiplies pool_3 by the
`softmax/logits/MatMul` weight only; torch-fidelity's `logits_unbiased`). The N samples are cut
into 10 contiguous splits (improved-gan: `preds[i*N//splits:(i+1)*N//splits]`), p(y) is each
split's mean prediction, and the score is reported as mean ± standard deviation over splits.
Computed in float64 from log-probabilities (log_softmax), so confident predictions do not
underflow. The standard protocol uses N = 50,000.
"""
from __future__ import annotations

import numpy as np
import scipy.special


def inception_score(logits: np.ndarray, splits: int = 10) -> dict:
  """logits [N, K] (unbiased Inception logits, or log-probabilities) -> {"is", "is_std", "is_splits"}."""
  logp = scipy.special.log_softmax(np.asarray(logits, np.float64), axis=1)
  n = len(logp)
  if n < splits:
    raise ValueError(f"IS with {splits} splits needs at least {splits} samples, got {n}")
  scores = []
  for i in range(splits):
    part = logp[i * n // splits:(i + 1) * n // splits]
    log_py = scipy.special.logsumexp(part, axis=0) - np.log(len(part))    # log of the split's mean p(y|x)
    kl = (np.exp(part) * (part - log_py)).sum(axis=1)
    scores.append(np.exp(kl.mean()))
  return {"is": float(np.mean(scores)), "is_std": float(np.std(scores)), "is_splits": splits}
