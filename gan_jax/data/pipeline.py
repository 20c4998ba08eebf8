"""The grain input pipeline: one global example order, each process reading its own slice.

The order of examples is a function of `data.seed` alone (grain's index shuffle, reshuffled
every epoch), cut into global batches. Process p of P reads rows [p·B/P, (p+1)·B/P) of every
global batch and nothing else, so the global batch at step t is the same for any number of
processes and devices, and across processes each example of an epoch is read exactly once.
The iterator's position is checkpointed with the train state (grain.checkpoint).
"""
from __future__ import annotations

import grain

from gan_jax.data import Dataset


def train_dataset(ds: Dataset, global_batch: int, seed: int, process_index: int,
                  process_count: int, num_threads: int = 4) -> grain.IterDataset:
  """Infinite IterDataset of this process's local batches: {key: [global_batch / P, ...]}."""
  local = global_batch // process_count
  if hasattr(ds.source, "shuffled"):   # two-domain data: each domain in its own order (data/unpaired.py)
    examples = ds.source.shuffled(seed)
  else:
    examples = grain.MapDataset.source(ds.source).shuffle(seed=seed).repeat()
  if ds.train_transform is not None:   # random augmentation, seeded by data.seed and the position
    examples = examples.random_map(ds.train_transform, seed=seed)
  else:
    examples = examples.map(ds.transform)
  batches = examples.batch(local, drop_remainder=True)
  mine = batches[process_index::process_count]
  return mine.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=4))
