"""Scale-out on a Dask cluster (the optional `dask` extra): vocabulary, co-occurrence counting and PPMI-SVD."""
