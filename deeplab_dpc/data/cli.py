"""Flag parsing shared by the dataset builder CLIs (error handling: `deeplab_dpc.cli`)."""


def split_list(value):
  """Parses a comma-separated `--splits` value; empty entries are dropped."""
  return [s.strip() for s in value.split(',') if s.strip()]
