"""The compiled part of claimwatch (streams/native/): everything else is pyproject.toml's.

``pip install`` builds it (Cython comes with the build requirements); a source tree
used in place builds it with ``python setup.py build_ext --inplace``.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("streams.native.kernel", ["streams/native/kernel.pyx"], extra_compile_args=["-O2"])],
        compiler_directives={"language_level": "3"},
    )
)
