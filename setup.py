"""The one thing pyproject.toml cannot say yet (setuptools calls its ext-modules table
experimental): the optional C timer cores, ``meterhub._speedups`` (see
``meterhub._definition.timercore``). ``optional=True``: a build without a C compiler or
Python's headers warns and installs the pure-Python cores instead."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("meterhub._speedups", sources=["src/meterhub/_speedups.c"], optional=True)
    ]
)
