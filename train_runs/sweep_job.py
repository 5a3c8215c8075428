"""The default sweep job: `run_node` as a submitit Checkpointable, so that on Slurm a job reaching its time limit
or preempted (SIGUSR2 / SIGTERM) is requeued by submitit with the same arguments and `train` resumes it from the
run's last resume.pt; `CommandJob` likewise for a study's own trainer, which is run again on the same run dir and
resumes itself. Kept apart from sweep.py so that `dynsim sweep plan` does not import submitit."""

from __future__ import annotations

import submitit

from train_runs.sweep import run_node
from train_runs.user_trainer import run_command_node


class NodeJob(submitit.helpers.Checkpointable):
    def __call__(self, *args):
        return run_node(*args)


class CommandJob(submitit.helpers.Checkpointable):
    def __call__(self, spec: dict, command: str):
        return run_command_node(spec, command)
