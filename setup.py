"""Kept so Beam's ``--setup_file`` can ship SkyPile to Dataflow/Spark/Flink workers; metadata is in setup.cfg."""
from setuptools import setup

setup()
