"""The plan's management half: annual targets and their progress, the task table, the platforms'
assessment, the yearly publication and the survey's 家底.

Targets (MB) and tasks (RW) are contract layers (gis/core/layers.py), loaded like every other
layer; what is computed from them lives in one module each here:

- ``tasks``: the task table (``task_table``, ``list_tasks``, ``get_task``): deadlines, overdue
  tasks, the tree, who updated a task and when, what measures it (docs/TASKS.md).
"""
