#!/usr/bin/env bash
# The same pattern by hand, with the plain Dask command line: inside an
# allocation, start a scheduler and workers with srun, sharing a scheduler file,
# then run dask-resample against it with --scheduler.
#
#   salloc --ntasks=9 --cpus-per-task=1 --mem-per-cpu=6G --time=04:00:00
#   bash deploy/in_allocation/srun_scheduler_file.sh INPUTS... -o OUT.zarr
#
# (or submit it with sbatch and the same resources).
set -euo pipefail

if [[ -z "${SLURM_JOB_ID:-}" ]]; then
    echo "$0: run inside a SLURM allocation (salloc or sbatch)" >&2
    exit 2
fi
ntasks="${SLURM_NTASKS:-2}"
n_workers=$(( ntasks > 1 ? ntasks - 1 : 1 ))
sched_file="${DASK_RESAMPLE_SCHEDULER_DIR:-$PWD}/dask-scheduler-${SLURM_JOB_ID}.json"
rm -f "${sched_file}"

# one task for the scheduler, the others for single-threaded workers
srun --ntasks=1 --nodes=1 --exclusive dask scheduler --scheduler-file "${sched_file}" &
sched_pid=$!
trap 'kill "${workers_pid:-}" "${sched_pid}" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    [[ -s "${sched_file}" ]] && break
    sleep 1
done
if [[ ! -s "${sched_file}" ]]; then
    echo "$0: the scheduler did not write ${sched_file}" >&2
    exit 1
fi
srun --ntasks="${n_workers}" --exclusive dask worker --scheduler-file "${sched_file}" \
    --nthreads 1 --local-directory "${TMPDIR:-/tmp}" &
workers_pid=$!

dask-resample run "$@" --scheduler "${sched_file}"
