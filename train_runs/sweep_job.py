"""The default sweep job: `run_node` as a submitit Checkpointable, so that on Slurm a job reaching its time limit
or preempted (SIGUSR2 / SIGTERM) is requeued by submitit with the same arguments and `train` resumes it from the
run's last resume.pt. Kept apart from sweep.py so that `dynsim sweep plan` does not import submitit."""

from __future__ import annotations

import submitit

from train_runs.sweep import run_node


class NodeJob(submitit.helpers.Checkpointable):
    def __call__(self, *args):
        return run_node(*args)
