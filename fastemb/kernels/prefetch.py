"""A software prefetch for Numba kernels: `prefetch(a, i)` asks the CPU to bring the cache line holding a[i]
(a[i, 0, ...] for an array of more dimensions) into every cache level, without waiting for it and without
faulting (LLVM's llvm.prefetch; a no-op where the CPU has no prefetch instruction). Hash-table kernels call
it for the rows of keys they will look up a few dozen keys later, so the memory latency of one lookup
overlaps with the work of the others. Out-of-range indices are allowed (never read).
`prefetch_row(matrix, i)` asks for every line of row i of a C-contiguous 2-D array: the word2vec kernels,
bound by the latency of fetching rows scattered over two matrices of tens of megabytes, fetch the next
window's rows while the current window computes.
`aligned_rows(n, width)` is a scratch matrix whose rows start on cache lines (models/w2v_dims.row_matrix
keeps the model's own rows so): a row's 64-byte vector loads then never straddle two lines; `pack_rows`
removes such padding in place.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, arr, index):
    if not isinstance(arr, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = context.cast(builder, args[1], sig.args[1], types.intp)
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [idx] + [zero] * (aryty.ndim - 1),
                                       wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # (address, read, locality 3: keep in all levels, data cache)
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, index), codegen


_LINE = 64


@njit(cache=True, nogil=True, inline="always")
def aligned_rows(n, width):
    """An uninitialised (n, width) float32 matrix whose first row starts on a 64-byte boundary (Numba's own
    arrays start on 32), so every row does when `width` is a multiple of 16 floats."""
    raw = np.empty(n * width + 16, np.float32)
    off = ((64 - raw.ctypes.data % 64) % 64) // 4
    return raw[off:off + n * width].reshape((n, width))


@njit(cache=True, nogil=True)
def pack_rows(flat, rows, dim, width):
    """In place: the first `dim` values of each of `rows` rows stored `width` apart in `flat` moved to be
    `dim` apart (rows 0, 1, ... in order; a value never moves up, so nothing is overwritten before it moves)."""
    for i in range(1, rows):
        src = i * width
        dst = i * dim
        for k in range(dim):
            flat[dst + k] = flat[src + k]


@intrinsic
def prefetch_row(typingctx, matrix, row):
    """Prefetch matrix[row] (read, keep in all cache levels)."""
    if not (isinstance(matrix, types.Array) and matrix.ndim == 2 and matrix.layout == "C"
            and isinstance(row, types.Integer)):
        return None
    sig = types.void(matrix, row)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [i, zero], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        base = builder.bitcast(ptr, i8p)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, ir.IntType(32), ir.IntType(32), ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        cols = builder.extract_value(ary.shape, 1)
        size = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(aty.dtype)))
        nbytes = builder.mul(cols, size)
        i32 = ir.IntType(32)
        with cgutils.for_range_slice(builder, zero, nbytes, context.get_constant(types.intp, _LINE),
                                     intp=zero.type) as (off, _):
            builder.call(fn, [builder.gep(base, [off]), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return sig, codegen


def _no_alias_option():
    """{"no_alias": True} where this Numba can declare a kernel's array arguments free of aliasing (LLVM's
    `noalias`, the flag Numba sets for its own parfor bodies), else {}. Without it LLVM cannot know that the
    rows a window kernel writes (deltas, scratch) do not overlap the rows it reads, and guards every
    vectorised loop with run-time overlap checks, one per pair of arrays, each time the loop is entered:
    for the six-slot window kernels, entered once per context word, that cost ~10-15% of an epoch.
    Only for kernels whose array arguments are distinct buffers (never two views of one array)."""
    try:
        from numba.core import compiler, cpu, options
        if not hasattr(compiler.Flags, "noalias"):
            return {}
        if not hasattr(cpu.CPUTargetOptions, "no_alias"):
            cpu.CPUTargetOptions.no_alias = options.TargetOptions.Mapping("noalias")
        return {"no_alias": True}
    except (ImportError, AttributeError):
        return {}


NO_ALIAS = _no_alias_option()
