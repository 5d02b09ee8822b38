"""landlink HTTP service and command line. Thin: calls gis/ for everything spatial."""
