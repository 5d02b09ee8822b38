"""The seeded synthetic sample city (``city``): ``landlink sample generate`` and the tests'
fixtures."""
