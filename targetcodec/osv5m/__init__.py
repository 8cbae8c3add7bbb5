"""What only the OpenStreetView-5M stage (section 4 "Larger-scale Experiment", Table 2, Appendix C)
uses: its settings and plan from the workflow config (``settings``), the adaLN head (``heads``) and
the geolocation metrics (``geo``). The stage's training job is ``targetcodec.train.osv5m``, its
report ``targetcodec.report.osv5m``, its data source ``targetcodec.data.sources.osv5m``.
"""
