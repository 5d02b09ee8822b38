"""The core every other part of gis/ stands on: settings (``config``), the database engine
(``db``, ``dblimits``), the data contract (``layers``), the tables (``models`` and the
``*_models`` modules, gathered for Alembic in ``all_models``), the domain rules and their
thresholds (``rules``, ``rules.toml``), names (``plan_names``), tokens and the audit log, and the
derivation graph that keeps every derived table current after writes (``graph``)."""
