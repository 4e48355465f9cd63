#!/usr/bin/env bash
# One batch job, one allocation: scheduler, client and workers all run inside it
# (dask-jobqueue's SLURMRunner). Good for sites that limit the number of jobs
# per user or forbid submitting jobs from jobs.
#
#   sbatch --nodes=4 --ntasks-per-node=32 deploy/in_allocation/sbatch_runner.sh INPUTS... -o OUT.zarr
#
# Needs at least 3 tasks: task 0 = scheduler, task 1 = client, the rest = workers.
#SBATCH --job-name=dask-resample
#SBATCH --ntasks=8
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=6G
#SBATCH --time=04:00:00
#SBATCH --output=dask-resample-%j.out

set -euo pipefail

if [[ -n "${DASK_RESAMPLE_VENV:-}" ]]; then
    # shellcheck disable=SC1091
    source "${DASK_RESAMPLE_VENV}/bin/activate"
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Under sbatch the script runs from a spool copy: prefer the submission directory.
if [[ -n "${SLURM_SUBMIT_DIR:-}" && -f "${SLURM_SUBMIT_DIR}/deploy/in_allocation/run_mosaic.py" ]]; then
    here="${SLURM_SUBMIT_DIR}/deploy/in_allocation"
fi
sched_dir="${DASK_RESAMPLE_SCHEDULER_DIR:-${SLURM_SUBMIT_DIR:-$PWD}}"

srun python "${here}/run_mosaic.py" --scheduler-file "${sched_dir}/dask-scheduler-{job_id}.json" "$@"
