"""Platforms and plans: the four kinds of platform (``platform_kinds``, §4), admission review of
new projects (``admission``, §5), the layout plan of the two corridors (``layout_plan``, §8) and
its report (``plan_report``)."""
