"""NumPy reference for Winograd F(2x2, 3x3) convolution (Lavin and Gray, 2016); same
signatures and arithmetic as ``_winograd.pyx``.

A 3x3 convolution computes each 2x2 block of outputs from a 4x4 tile of the (padded) input:
    Y = A^T [ (G g G^T) * (B^T d B) ] A                * : elementwise, per (tile, f, c), summed over c
with g a 3x3 kernel, d the 4x4 input tile, and
    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
16 multiplies per (tile, f, c) give 4 outputs, where direct convolution needs 36: 2.25x
fewer. The sum over c of the 16 elementwise products is 16 GEMMs, (F, C) @ (C, tiles).

The weight gradient dW[f, c] = sum over images and pixels of dout[f, y, x] * xp[c, y + i, x + j]
is F(3x3, 2x2): per 2x2 tile g of dout and the 4x4 input tile d under it (the same tiles),
    dW += A3^T [ (G2 g G2^T) * (B^T d B) ] A3        summed over tiles and images: 16 GEMMs
    G2   = [[1, 0], [1/2, 1/2], [1/2, -1/2], [0, -1]]
    A3^T = [[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, 1]]
(F(3, 2)'s usual B^T has its last row negated; that sign sits in G2's last row instead, so
the input transform B^T d B is the forward's.)
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
G2 = np.array([[1, 0], [0.5, 0.5], [0.5, -0.5], [0, -1]], dtype=np.float64)
A3T = np.array([[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, 1]], dtype=np.float64)


def _tile_rows(tile_rows, H):
    """(ty0, ty1): the rows of 2x2 output tiles asked for, all ceil(H/2) of them if None."""
    return tuple(tile_rows) if tile_rows is not None else (0, (H + 1) // 2)


def winograd_input(x, V, tile_rows=None):
    """x: (N, C, H, W) -> V: (16, C, N*th*tw), V[4i + j, c, n*th*tw + t] = (B^T d B)[i, j] of tile t
    of channel c of image n: the 4x4 tiles (stride 2) of each image zero-padded by 1 (and by
    one more row/column when H or W is odd), th = ceil(H/2). With tile_rows = (ty0, ty1) only
    the tiles of rows ty0..ty1-1, th = ty1 - ty0."""
    N, C, H, W = x.shape
    ty0, ty1 = _tile_rows(tile_rows, H)
    th, tw = ty1 - ty0, (W + 1) // 2
    xp = np.zeros((N, C, 2 * ((H + 1) // 2) + 2, 2 * tw + 2), dtype=x.dtype)
    xp[:, :, 1:H + 1, 1:W + 1] = x
    xp = xp[:, :, 2 * ty0:]                                                                 # from tile row ty0
    s = xp.strides
    d = as_strided(xp, (N, C, th, tw, 4, 4), (s[0], s[1], 2 * s[2], 2 * s[3], s[2], s[3]))   # 4x4 tiles, stride 2
    v = np.einsum("ij,ncyxjk,lk->ilcnyx", BT, d, BT)                                        # B^T d B
    V[...] = v.reshape(16, C, N * th * tw)


def winograd_output(M, out, bias=None, tile_rows=None):
    """M: (16, F, N*th*tw) -> out: (N, F, H, W) = A^T m A per tile (+ bias (F,) if given), cropped
    to H <= 2*th, W <= 2*tw; image n's tiles in columns n*th*tw onwards. With tile_rows =
    (ty0, ty1), M holds the tiles of rows ty0..ty1-1 (th = ty1 - ty0), and only out's rows
    2ty0 .. 2ty1 - 1 are written."""
    N, F, H, W = out.shape
    ty0, ty1 = _tile_rows(tile_rows, H)
    th, tw = ty1 - ty0, (W + 1) // 2
    m = M.reshape(4, 4, F, N, th, tw)
    y = np.einsum("ij,jkfnyx,lk->nfyixl", AT, m, AT).reshape(N, F, 2 * th, 2 * tw)  # A^T m A
    rows = min(H, 2 * ty1) - 2 * ty0                                                # cropped to H, W
    y = y[:, :, :rows, :W]
    out[:, :, 2 * ty0:2 * ty0 + rows] = y if bias is None else y + bias[:, None, None]


def winograd_dout(dout, D, tile_major=False):
    """dout: (N, F, H, W) -> D: (16, F, N*th*tw), D[4i + j, f, n*th*tw + t] = (G2 g G2^T)[i, j] of
    the 2x2 tile t (zero beyond H, W) of image n, th = ceil(H/2); if tile_major, D is
    (16, N*th*tw, F), D[4i + j, n*th*tw + t, f]."""
    N, F, H, W = dout.shape
    th, tw = (H + 1) // 2, (W + 1) // 2
    g = np.zeros((N, F, 2 * th, 2 * tw), dtype=dout.dtype)
    g[:, :, :H, :W] = dout
    tiles = g.reshape(N, F, th, 2, tw, 2).transpose(0, 1, 2, 4, 3, 5)                  # (N, F, th, tw, 2, 2)
    d = np.einsum("ia,nfyxab,jb->ijfnyx", G2, tiles, G2).reshape(16, F, N * th * tw)  # G2 g G2^T
    D[...] = d.transpose(0, 2, 1) if tile_major else d


def winograd_weights(W, U):
    """W: (F, C, 3, 3) -> U: (16, F, C), U[4i + j, f, c] = (G g G^T)[i, j] of kernel g = W[f, c]."""
    F, C = W.shape[:2]
    U[...] = np.einsum("ij,fcjk,lk->ilfc", G, W, G).reshape(16, F, C)


def winograd_weight_grad(M, dW):
    """M: (16, F, C), summed (G2 g G2^T) * (B^T d B) -> dW: (F, C, 3, 3) = A3^T m A3 per (f, c)."""
    F, C = M.shape[1:]
    dW[...] = np.einsum("ij,jkfc,lk->fcil", A3T, M.reshape(4, 4, F, C), A3T)



# The Winograd convolution of a chunk of images, as the compiled kernels run it (_winograd.pyx):
# m images at a time, their tiles side by side (image i's from column i*T).

def _groups(x, lo, hi, V, tile_rows=None):
    """For the images lo..hi-1 of x (N, C, H, W), m at a time (as many as the scratch V
    (16, C, group*T) holds): (n, m, m*T), T = ceil(H/2)*ceil(W/2), or (ty1 - ty0)*ceil(W/2)
    with tile_rows = (ty0, ty1)."""
    H, W = x.shape[2:]
    ty0, ty1 = _tile_rows(tile_rows, H)
    T = (ty1 - ty0) * ((W + 1) // 2)
    group = V.shape[2] // T
    for n in range(lo, hi, group):
        m = min(group, hi - n)
        yield n, m, m * T


def _first(b, tiles, tile_major=False):
    """The first `tiles` tiles of scratch b as a C-contiguous array, read as the compiled kernels
    read it: (16, rows, tiles) of b (16, rows, ...), or (16, tiles, cols) of a tile-major b
    (16, ..., cols)."""
    k = b.shape[2] if tile_major else b.shape[1]
    head = b.reshape(-1)[:16 * k * tiles]
    return head.reshape((16, tiles, k) if tile_major else (16, k, tiles))


def conv_forward(x, U, bias, out, V, M, lo, hi, tile_rows=None):
    """out[n] = conv(x[n], W) (+ bias) for the images n in lo..hi-1: 3x3, stride 1, padding 1.

    x: (N, C, H, W); U: (16, F, C) = G W G^T; bias: (F,) or None; out: (N, F, H, W);
    V: (16, C, m*T) and M: (16, F, m*T) scratch, m images per call, T = ceil(H/2)*ceil(W/2), or
    (ty1 - ty0)*ceil(W/2) with tile_rows = (ty0, ty1): then only out's rows 2ty0 .. 2ty1 - 1.
    """
    for n, m, tiles in _groups(x, lo, hi, V, tile_rows):
        Vm, Mm = _first(V, tiles), _first(M, tiles)
        winograd_input(x[n:n + m], Vm, tile_rows)              # V = B^T d B per tile
        np.matmul(U, Vm, out=Mm)                               # 16 GEMMs: M_k = U_k @ V_k
        winograd_output(Mm, out[n:n + m], bias, tile_rows)     # out = A^T m A per tile (+ bias)


def weight_products(x, dout, acc, V, D, lo, hi, tile_major=False):
    """acc_k += D_k @ V_k.T for k < 16, summed over the images n in lo..hi-1: D = G2 g G2^T of
    the 2x2 tiles of dout[n], V = B^T d B of the 4x4 tiles of x[n].

    x: (N, C, H, W); dout: (N, F, H, W); acc: (16, F, C), added to; V: (16, C, m*T) and
    D: (16, F, m*T) scratch, or (16, m*T, F) if tile_major; m images per call.
    """
    for n, m, tiles in _groups(x, lo, hi, V):
        Vm, Dm = _first(V, tiles), _first(D, tiles, tile_major)
        winograd_input(x[n:n + m], Vm)
        winograd_dout(dout[n:n + m], Dm, tile_major)
        acc += np.matmul(Dm.transpose(0, 2, 1) if tile_major else Dm, Vm.transpose(0, 2, 1))   # 16 GEMMs: D_k @ V_k.T
