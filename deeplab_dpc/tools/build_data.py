"""Builds a dataset's TFRecords: `deeplab-build-data BUILDER [--flag=value ...]`.

Builders (the datasets/build_<BUILDER>_data.py CLIs, same flags):
  voc2012      PASCAL VOC 2012 (and SBD's train_aug)
  cityscapes   Cityscapes, train-id labels
  person_part  PASCAL-Person-Part
  demo         the synthetic demo set
  custom       your own folder of images and masks, plus dataset_info.json

`deeplab-build-data BUILDER --help` lists a builder's flags. See docs/datasets.md.
"""

import importlib
import sys

BUILDERS = ('voc2012', 'cityscapes', 'person_part', 'demo', 'custom')


def run():
  """`deeplab-build-data`: runs the builder named by the first argument."""
  args = sys.argv[1:]
  if not args or args[0].lstrip('-') in ('help', 'h', 'helpfull', '?'):
    print(__doc__)
    sys.exit(0 if args else 2)
  if args[0] not in BUILDERS:
    print(f'error: unknown builder {args[0]!r}; choose one of {", ".join(BUILDERS)}',
          file=sys.stderr)
    sys.exit(2)
  # Imported only now: each builder defines its own flags, some of them the same name.
  builder = importlib.import_module(f'deeplab_dpc.tools.build_{args[0]}_data')
  # absl reads the program name from argv[0]; the builder's --help then names the command.
  sys.argv = [f'{sys.argv[0]} {args[0]}', *args[1:]]
  builder.run()


if __name__ == '__main__':
  run()
