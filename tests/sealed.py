"""Records written by hand in a test, sealed like a complete run's.

`report.records.load` reads only a complete run (its manifest, run.json,
lists every records file with its digest); the tests that build records
without the driver describe them the way `run.record.Run.complete` does.
"""

from rationality_jax import files
from rationality_jax import manifest
from rationality_jax.report import records


def seal(run_dir) -> str:
  """Writes run_dir's manifest: complete, listing its records files."""
  run_dir = str(run_dir)
  files.write_json(
    f"{run_dir}/{manifest.MANIFEST}",
    {
      "kind": "evaluate",
      "status": manifest.COMPLETE,
      "records": records.records_manifest(run_dir),
    },
  )
  return run_dir
