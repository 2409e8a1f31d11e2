"""Sensors of the Castore dam provider."""

from airflow_provider_castore_dam.sensors.drain import MessageChannelDrainedSensor

__all__ = ["MessageChannelDrainedSensor"]
