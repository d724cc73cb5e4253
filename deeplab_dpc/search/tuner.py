"""The proxy task as a KerasTuner trial.

`ProxyTaskTuner` is a `BaseTuner` (the KerasTuner worker loop without the Keras-model
bookkeeping of `keras_tuner.Tuner`, which saves a model per trial): it asks the oracle
for a trial, runs the proxy task on the trial's cell and reports `{'miou': score}`
(objective: max). It runs in the embedded search and in every KerasTuner worker
(`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` / `_PORT`).

A diverged proxy task (`ProxyTaskDiverged`) is a `FailedTrialError`: the trial is
recorded as failed with its reason and the search goes on. KerasTuner does not send a
trial's message over gRPC, so the reason also travels in the trial's hyperparameters
(`failure_reason`).
"""

import dataclasses
import json
import os

import keras_tuner
from absl import logging
from keras_tuner.engine import base_tuner

from deeplab_dpc import fileio
from deeplab_dpc.search import proxy_task
from deeplab_dpc.search import records

PROJECT_NAME = 'study'


class ProxyTaskTuner(base_tuner.BaseTuner):
  """Runs trials of the dense prediction cell search on cached features.

  Args:
    oracle: A `DensePredictionCellOracle`.
    cache_dir: The feature cache.
    manifest: Its manifest.
    proxy_config: A `proxy_task.ProxyConfig`.
    directory: The study folder (`--search_dir`); KerasTuner's project lives in
      `<directory>/study`.
  """

  def __init__(self, oracle, cache_dir: str, manifest: dict,
               proxy_config: proxy_task.ProxyConfig, directory: str):
    self.cache_dir = cache_dir
    self.manifest = manifest
    self.proxy_config = proxy_config
    project_dir = os.path.join(directory, PROJECT_NAME)
    tuner_id = os.environ.get('KERASTUNER_TUNER_ID', 'tuner0')
    tuner_file = os.path.join(project_dir, f'{tuner_id}.json')
    is_worker = ('KERASTUNER_ORACLE_IP' in os.environ and 'chief' not in tuner_id)
    if (not is_worker and fileio.exists(os.path.join(project_dir, 'oracle.json')) and
        not fileio.exists(tuner_file)):
      # KerasTuner reloads the oracle only when this tuner's own file exists; a study
      # started under another tuner id (embedded vs chief) or killed during its first
      # trial has oracle.json but not that file.
      fileio.atomic_write(tuner_file, '{}')
    super().__init__(oracle, hypermodel=None, directory=directory, project_name=PROJECT_NAME,
                     overwrite=False)

  def run_trial(self, trial, *args, **kwargs):
    import keras  # pylint: disable=g-import-not-at-top
    keras.backend.clear_session()  # Each trial builds a new model; keep memory flat.
    values = trial.hyperparameters.values
    cell = json.loads(values['cell'])
    config = self.proxy_config
    if values.get('proxy_steps'):  # A rung of successive halving: its own budget.
      config = dataclasses.replace(config, training_number_of_steps=int(values['proxy_steps']))
    logging.info('Trial %s (%s, %s): %d proxy steps', trial.trial_id, values['cell_hash'][:8],
                 values.get('origin'), config.training_number_of_steps)
    try:
      result = proxy_task.run_proxy_task(cell, self.cache_dir, self.manifest, config)
    except proxy_task.ProxyTaskDiverged as e:
      values['failure_reason'] = str(e)
      raise keras_tuner.errors.FailedTrialError(str(e)) from e
    except Exception as e:  # pylint: disable=broad-except
      values['failure_reason'] = records.failure_reason(f'{type(e).__name__}: {e}')
      raise
    return {'miou': result['miou'], 'pixel_accuracy': result['pixel_accuracy'],
            'train_seconds': result['train_seconds'], 'eval_seconds': result['eval_seconds']}

  def save(self):
    # KerasTuner writes its JSON in place; a kill mid-write would corrupt the study.
    if not self._is_worker():
      self.oracle.save()
    fileio.atomic_write(self._get_tuner_fname(), json.dumps(self.get_state()))
