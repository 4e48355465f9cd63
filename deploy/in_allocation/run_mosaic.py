"""Run one mosaic inside an existing SLURM allocation with dask-jobqueue's runner.

Launch it with ``srun`` so that every task of the allocation runs this file:
task 0 becomes the Dask scheduler, task 1 runs the code below (the client),
all other tasks become workers (``dask_jobqueue.slurm.SLURMRunner``)::

    srun -n 10 python run_mosaic.py --scheduler-file "$SCRATCH/sched-{job_id}.json" \\
        jw*_cal.fits -o mosaic.zarr

The scheduler file must be on a file system that every node sees. Any
``dask-resample run`` option given after the inputs is not supported here;
use the Python keyword arguments of :func:`dask_resample.resample` instead.
"""

from __future__ import annotations

import argparse
import logging
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="an association or input files")
    parser.add_argument("-o", "--output", required=True, help="mosaic to write (a Zarr directory)")
    parser.add_argument(
        "--scheduler-file",
        default="scheduler-{job_id}.json",
        help="shared path of the scheduler file ({job_id} is replaced)",
    )
    parser.add_argument("--tile-shape", type=int, nargs=2, default=None, metavar=("NY", "NX"))
    parser.add_argument("--resume", action="store_true", help="finish an interrupted mosaic")
    args = parser.parse_args()

    from dask_jobqueue.slurm import SLURMRunner
    from distributed import Client

    # Workers: one thread each, scratch on the node-local disk.
    worker_options = {"nthreads": 1, "local_directory": os.environ.get("TMPDIR", "/tmp")}
    with SLURMRunner(scheduler_file=args.scheduler_file, worker_options=worker_options) as runner:
        # Only task 1 gets here; the scheduler and worker tasks block inside the runner.
        with Client(runner) as client:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
            client.wait_for_workers(runner.n_workers)
            from dask_resample import resample

            inputs = args.inputs[0] if len(args.inputs) == 1 else args.inputs
            resample(inputs, args.output, client=client, tile_shape=args.tile_shape, resume=args.resume)
            print(args.output)


if __name__ == "__main__":
    main()
