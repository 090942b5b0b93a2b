"""Build hook: the optional C accelerator of the HDLC hot path (metadata is in setup.cfg).

``optional=True``: without a compiler (or Python headers) the build warns and the package
installs anyway, running the pure-Python codec in ``sstp_pppd/core/hdlc.py``.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sstp_pppd.core._hdlc",
            sources=["sstp_pppd/core/_hdlc.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=c11"],
            optional=True,
        )
    ]
)
