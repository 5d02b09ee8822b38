"""The three kinds of land (三块地, DOMAIN_RULES §3): 批而未供 (``unsupplied``), 闲置
(``idle_land``),
低效利用 (``low_efficiency``); a recorded detection run over all three (``detection``) and what
land-reserve staff ask of it (``land_summary``). Entry point: ``detection.detect``."""
