"""Airflow hooks: Castore event stores and message channels from Airflow connections."""
