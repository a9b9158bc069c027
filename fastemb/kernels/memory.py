"""Memory primitives shared by the kernels. `prefetch_row(matrix, i)` asks the CPU to start bringing row i of a
C-contiguous 2-D array into cache (LLVM's prefetch intrinsic, one per 64-byte line; a hint: nothing is read,
nothing can fault). The word2vec kernels are bound by the latency of fetching rows scattered over two matrices
of tens of megabytes: fetching the next window's rows while the current window computes hides most of it."""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LINE = 64


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
        with cgutils.for_range_slice(builder, zero, nbytes, context.get_constant(types.intp, LINE),
                                     intp=zero.type) as (off, _):
            builder.call(fn, [builder.gep(base, [off]), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return sig, codegen
