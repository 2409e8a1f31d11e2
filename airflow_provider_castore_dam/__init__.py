"""Apache Airflow provider for Castore's data-maintenance tool (dam).

The pour engine lives in :mod:`airflow_provider_castore_dam.dam` and works without Airflow.
"""

__version__ = "0.1.0"
