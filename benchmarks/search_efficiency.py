r"""Search efficiency on the demo task: the best proxy mIOU each algorithm finds per step.

Runs each variant (random_local, the paper's; evolution; successive_halving; and
random_local with each zero-cost pre-screen) over --seeds search seeds on the demo
task with the demo's search recipe, each until it has spent --budget_trials full
proxy trainings' worth of proxy steps (random_local twice that, so that "reaches
at B what random_local reaches at 2B" can be read off), and prints per variant the
median [min, max] best proxy mIOU at the budget and the final-recipe mIOU of its best
cell (`deeplab_dpc/search/efficiency.py`). --fidelity_json (a report of
benchmarks/proxy_fidelity.py) adds each zero-cost score's Spearman rho against those
cells' full-training scores. Resumable with the same --work_dir. A measurement, not
a test.

  python benchmarks/search_efficiency.py --seeds=5 --output_json=/tmp/efficiency.json \
      --work_dir=/tmp/efficiency --fidelity_json=/tmp/fidelity.json
"""

import json
import os

from absl import flags
from absl import logging

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab_dpc import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc import demo_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc.search import efficiency  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('seeds', 5, 'Search seeds per variant (0 .. N-1).')
flags.DEFINE_integer('budget_trials', 24, 'B: the budget in full proxy trainings (B times the '
                     'demo\'s proxy steps).')
flags.DEFINE_list('variants', list(efficiency.VARIANTS), 'Variants to run.')
flags.DEFINE_bool('full_training', True, 'Train each variant\'s best cell with the demo\'s '
                  'final recipe.')
flags.DEFINE_string('fidelity_json', '', 'A proxy_fidelity.py report: rank each zero-cost '
                    'score against its full-training scores.')
flags.DEFINE_string('work_dir', '', 'Data, caches and studies (resumable); default: a '
                    'temporary folder.')
flags.DEFINE_string('output_json', '', 'Write the report here too.')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.INFO)
  fidelity_report = None
  if FLAGS.fidelity_json:
    if not os.path.isfile(FLAGS.fidelity_json):
      raise FileNotFoundError(f'--fidelity_json: no such file: {FLAGS.fidelity_json}')
    with open(FLAGS.fidelity_json, encoding='utf-8') as f:
      fidelity_report = json.load(f)

  def measure(work_dir):
    config = demo_pipeline.DemoConfig.create(work_dir)
    return efficiency.run_efficiency(config, work_dir, FLAGS.seeds, FLAGS.budget_trials,
                                     tuple(FLAGS.variants), FLAGS.full_training,
                                     fidelity_report)

  report = cli.in_work_dir(FLAGS.work_dir, measure)
  print(efficiency.format_report(report))
  if FLAGS.output_json:
    fileio.atomic_write(FLAGS.output_json, json.dumps(report, indent=1) + '\n')


if __name__ == '__main__':
  cli.run(main)
