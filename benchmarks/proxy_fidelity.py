r"""Proxy fidelity on the demo task: does the proxy task rank cells as full training does?

Draws --num_cells cells uniformly from the search space (--cell_seed), scores each
with the demo search's proxy task (cached output-stride-8 features of the shipped
pretrained backbone, scored on held-out training images) and with the demo's full
training recipe (scored on demo val), trains --noise_cells of them with
--noise_seeds training seeds, and prints the proxy and full spreads, the seed noise,
Spearman's rho and Kendall's tau with 90% bootstrap intervals, and whether the
proxy's top 3 hold the best full cell (`deeplab_dpc/search/fidelity.py`). Needs
nothing else: the demo data are built under --work_dir (default: a temporary
folder). Resumable with the same --work_dir. A measurement, not a test.

  python benchmarks/proxy_fidelity.py --num_cells=16 --cell_seed=0 \
      --output_json=/tmp/fidelity.json --work_dir=/tmp/fidelity
"""

import json
import os

from absl import flags
from absl import logging

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from deeplab_dpc import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc import demo_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab_dpc.search import fidelity  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('num_cells', 16, 'N: cells drawn uniformly (>= 3).')
flags.DEFINE_integer('cell_seed', 0, 'Seed of the cell draw.')
flags.DEFINE_integer('noise_cells', 2, 'Cells also trained with other training seeds.')
flags.DEFINE_integer('noise_seeds', 3, 'Training seeds of each of those cells.')
flags.DEFINE_integer('seed', 0, 'Training seed of every cell (and of the cache and proxy).')
flags.DEFINE_string('work_dir', '', 'Data, cache and results (resumable); default: a '
                    'temporary folder.')
flags.DEFINE_string('output_json', '', 'Write the report here too.')
flags.DEFINE_string('backbone_checkpoint', '', 'The pretrained demo backbone; default: the '
                    'shipped one.')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {" ".join(argv[1:])}')
  if FLAGS.num_cells < 3:
    raise ValueError(f'--num_cells must be >= 3 (a rank correlation needs at least 3 cells), '
                     f'got {FLAGS.num_cells}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.INFO)

  def study(work_dir):
    config = demo_pipeline.DemoConfig.create(work_dir, seed=FLAGS.seed,
                                             backbone_checkpoint=FLAGS.backbone_checkpoint)
    return demo_pipeline.run_fidelity(config, work_dir, FLAGS.num_cells, FLAGS.cell_seed,
                                      FLAGS.noise_cells, FLAGS.noise_seeds)

  report = cli.in_work_dir(FLAGS.work_dir, study)
  print(fidelity.format_report(report))
  if FLAGS.output_json:
    fileio.atomic_write(FLAGS.output_json, json.dumps(report, indent=1) + '\n')


if __name__ == '__main__':
  cli.run(main)
