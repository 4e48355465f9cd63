#!/usr/bin/env bash
# Submit a small driver job that starts a SLURMCluster (worker jobs submitted by
# dask-jobqueue from inside the driver) and runs one mosaic.
#
#   sbatch deploy/sbatch_driver.sh INPUTS... -o OUT.zarr [dask-resample run options]
#
# Environment (all optional):
#   DASK_RESAMPLE_JOBS    worker jobs to submit (default 8)
#   DASK_RESAMPLE_VENV    virtualenv to activate (default: none, use the PATH)
#   DASK_CONFIG           directory holding jobqueue.yaml (see jobqueue-slurm.yaml)
#
# The driver needs little: one core, a few GB for the plan and the scheduler, and
# a walltime covering the whole run. It resubmits nothing by itself: if it is
# killed, submit the same command again with --resume.
#SBATCH --job-name=dask-resample-driver
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=12:00:00
#SBATCH --output=dask-resample-driver-%j.out

set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: sbatch $0 INPUTS... -o OUT.zarr [options]" >&2
    exit 2
fi

jobs="${DASK_RESAMPLE_JOBS:-8}"
if [[ -n "${DASK_RESAMPLE_VENV:-}" ]]; then
    # shellcheck disable=SC1091
    source "${DASK_RESAMPLE_VENV}/bin/activate"
fi

echo "driver job ${SLURM_JOB_ID:-?} on $(hostname): ${jobs} worker jobs"
exec dask-resample run "$@" --cluster slurm --jobs "${jobs}"
