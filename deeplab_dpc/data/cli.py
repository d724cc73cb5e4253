"""Flag parsing shared by the dataset builder CLIs (error handling: `deeplab_dpc.cli`)."""


def split_list(value):
  """Parses a comma-separated `--splits` value; empty entries are dropped."""
  return [s.strip() for s in value.split(',') if s.strip()]


def print_written(written, output_dir):
  """Prints one `<split>: <count> examples in <output_dir>` line per split built."""
  for split, count in written.items():
    print(f'{split}: {count} examples in {output_dir}')
