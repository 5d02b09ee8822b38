"""项目—用地—产出: the §1 linkage of enterprises to parcels (``linkage``), an enterprise's land
and the per-mu figures of every level (``per_mu``), the A/B/C/D evaluation (``evaluation``; read
by ``evaluation_read``), the §7 indicators (``indicators``) and the backward-capacity candidates
(``backward_capacity``). Each is a producer of the derivation graph (gis/core/graph.py)."""
