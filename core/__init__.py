"""Pieces that tasks/, policies/ and harness/ all use; this package imports none of them.

`paths` (repository locations), `io` (atomic writes), `registry` (lazy name -> object), `geometry`
(rotations), `demofile` (the demonstration HDF5 format), `flops` (FLOP counting), `spec` (policy identity).
"""
