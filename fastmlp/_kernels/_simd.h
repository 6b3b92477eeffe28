/* Run-time CPU dispatch for the hand-written dense loops (included by _dense.pyx only).
 *
 * Why this design: the wheel must run on any x86-64 (SSE2), yet on AVX2/FMA and AVX-512 CPUs
 * those loops should use the wide registers. Compiling the whole kernel package once per target
 * would triple its size (2.7 MB stripped per copy, against a 5 MB budget for the installed
 * package); instead only the loops that run over the batch, which are the ones that vectorize,
 * live here. Their bodies are written ONCE, in _simd_body.h, and that file is included once per
 * (element type, target) with the target given by __attribute__((target(...))), so the compiler
 * emits SSE2, AVX2+FMA and AVX-512 versions of the same source. At module initialization
 * _dense.pyx picks one version per loop into the table ``fm_loops``: the widest the CPU supports
 * (__builtin_cpu_supports also checks that the OS saves the wide registers), or a lower one named
 * by the environment variable FASTMLP_CPU=baseline|avx2|avx512.
 *
 * Also here, because they are most of a small network's step: the piecewise-linear activations
 * (identity, relu, leaky_relu) and their derivatives, applied as the forward product leaves the
 * registers (forward_layer), and the binary cross-entropy with its output delta, whose exp and
 * log1p run on registers (fdlibm's algorithms as selects, see _simd_body.h; without
 * __builtin_convertvector they stay scalar libm calls). What stays in Cython (the other
 * activations and losses, optimizers, batch norm, dropout) is compiled for the baseline only.
 *
 * Compilers without the target attribute (MSVC) and non-x86 machines (aarch64, Apple arm64) get
 * only the baseline version: the code compiles everywhere and falls back to the portable path.
 *
 * Products (forward, delta of the previous layer) add their terms in the same order on every
 * target, and differ only where FMA rounds a*b+c once instead of twice; sums over the batch
 * (weight and bias gradients) keep one partial sum per register lane, so their order, and their
 * last bits, depend on the target's register width (float64 results stay far inside 1e-10).
 */
#ifndef FASTMLP_SIMD_H
#define FASTMLP_SIMD_H

#include <string.h>

/* FASTMLP_NO_DISPATCH and FASTMLP_NO_VECTOR_EXTENSIONS build what MSVC and non-x86 machines
 * get (used to test those paths on x86 with GCC). */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__)) \
        && !defined(FASTMLP_NO_DISPATCH) && !defined(FASTMLP_NO_VECTOR_EXTENSIONS)
#define FM_X86_DISPATCH 1
#else
#define FM_X86_DISPATCH 0
#endif

#if defined(_MSC_VER)
#define FM_RESTRICT __restrict
#define FM_INLINE __inline
#else
#define FM_RESTRICT __restrict__
#define FM_INLINE inline
#endif

/* One register of FM_ACC elements: 16 bytes (SSE2, the baseline), 32 (AVX2), 64 (AVX-512 doubles;
 * its floats use 32, see below). GCC
 * and Clang get vector extensions; other compilers (MSVC: baseline only) a plain array and
 * element loops, with the same arithmetic. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(FASTMLP_NO_VECTOR_EXTENSIONS)
typedef double fm_vec_d16 __attribute__((vector_size(16)));
typedef float fm_vec_f16 __attribute__((vector_size(16)));
typedef double fm_vec_d32 __attribute__((vector_size(32)));
typedef float fm_vec_f32 __attribute__((vector_size(32)));
typedef double fm_vec_d64 __attribute__((vector_size(64)));
typedef float fm_vec_f64 __attribute__((vector_size(64)));
#define FM_VFMA(a, b, x) ((a) += (b) * (x))
#define FM_VFMA_V(a, x, y) ((a) += (x) * (y))
#define FM_VADD(a, x) ((a) += (x))
#define FM_VADD_S(a, s) ((a) += (s))
#define FM_LANE(a, l) ((a)[l])
#define FM_VEXT 1
#else
#define FM_VEXT 0
typedef struct { double v[2]; } fm_vec_d16;
typedef struct { float v[4]; } fm_vec_f16;
#define FM_VFMA(a, b, x) do { int l_; for (l_ = 0; l_ < FM_ACC; l_++) (a).v[l_] += (b) * (x).v[l_]; } while (0)
#define FM_VFMA_V(a, x, y) do { int l_; for (l_ = 0; l_ < FM_ACC; l_++) (a).v[l_] += (x).v[l_] * (y).v[l_]; } while (0)
#define FM_VADD(a, x) do { int l_; for (l_ = 0; l_ < FM_ACC; l_++) (a).v[l_] += (x).v[l_]; } while (0)
#define FM_VADD_S(a, s) do { int l_; for (l_ = 0; l_ < FM_ACC; l_++) (a).v[l_] += (s); } while (0)
#define FM_LANE(a, l) ((a).v[l])
#endif
/* Element-wise math on whole registers (exp, log1p, selects; see _simd_body.h) needs
 * __builtin_convertvector (GCC 9, Clang); without it those loops run on libm, one element at a
 * time. */
#if FM_VEXT && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 9))
#define FM_VMATH 1
#else
#define FM_VMATH 0
#endif
#include <math.h>
/* __builtin_shufflevector (GCC 12, Clang) lets reductions share their additions (reduce4). */
#if FM_VEXT && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12))
#define FM_SHUFFLE 1
#else
#define FM_SHUFFLE 0
#endif

/* The activation ids the loops here apply themselves (the rest stay in Cython's ``activate``);
 * they mirror _activations.pxd. */
#define FM_ACT_IDENTITY 0
#define FM_ACT_SIGMOID 1
#define FM_ACT_TANH 3
#define FM_ACT_RELU 2
#define FM_ACT_LEAKY_RELU 4

#define FM_VLOAD(a, p) memcpy(&(a), (p), sizeof(a))
#define FM_VSTORE(p, a) memcpy((p), &(a), sizeof(a))
#define FM_VZERO(a) do { FM_VEC z_ = {0}; (a) = z_; } while (0)

/* The register math helpers are always inlined: a register wider than the baseline's passed
 * to a function compiled for the baseline would go through memory (GCC warns about that ABI,
 * which never applies here). */
#if defined(__GNUC__) || defined(__clang__)
#define FM_VINLINE inline __attribute__((always_inline))
#else
#define FM_VINLINE FM_INLINE
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define FM_CAT3_(a, b, c) a##_##b##_##c
#define FM_CAT3(a, b, c) FM_CAT3_(a, b, c)
#define FM_NAME(fn) FM_CAT3(fn, FM_T_NAME, FM_TARGET_NAME)

/* ---- the baseline (portable) versions: compiled with the build's own flags ---- */
#define FM_TARGET_ATTR
#define FM_TARGET_NAME baseline
#define FM_T double
#define FM_TI long long
#define FM_T_NAME d
#define FM_ACC 2
#define FM_VEC fm_vec_d16
#include "_simd_body.h"
#undef FM_T
#undef FM_TI
#undef FM_T_NAME
#undef FM_ACC
#undef FM_VEC
#define FM_T float
#define FM_TI int
#define FM_T_NAME f
#define FM_ACC 4
#define FM_VEC fm_vec_f16
#include "_simd_body.h"
#undef FM_T
#undef FM_TI
#undef FM_T_NAME
#undef FM_ACC
#undef FM_VEC
#undef FM_TARGET_ATTR
#undef FM_TARGET_NAME

#if FM_X86_DISPATCH
/* ---- AVX2 + FMA (x86-64-v3 without the rest) ---- */
#define FM_TARGET_ATTR __attribute__((target("avx2,fma")))
#define FM_TARGET_NAME avx2
#define FM_T double
#define FM_TI long long
#define FM_T_NAME d
#define FM_ACC 4
#define FM_VEC fm_vec_d32
#include "_simd_body.h"
#undef FM_T
#undef FM_TI
#undef FM_T_NAME
#undef FM_ACC
#undef FM_VEC
#define FM_T float
#define FM_TI int
#define FM_T_NAME f
#define FM_ACC 8
#define FM_VEC fm_vec_f32
#include "_simd_body.h"
#undef FM_T
#undef FM_TI
#undef FM_T_NAME
#undef FM_ACC
#undef FM_VEC
#undef FM_TARGET_ATTR
#undef FM_TARGET_NAME

/* ---- AVX-512 (F, VL, DQ, BW: Skylake-X and later), 512-bit vectors preferred ---- */
#if defined(__clang__)
#define FM_TARGET_ATTR __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"), min_vector_width(512)))
#else
#define FM_TARGET_ATTR __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512")))
#endif
#define FM_TARGET_NAME avx512
#define FM_T double
#define FM_TI long long
#define FM_T_NAME d
#define FM_ACC 8
#define FM_VEC fm_vec_d64
#include "_simd_body.h"
#undef FM_T
#undef FM_TI
#undef FM_T_NAME
#undef FM_ACC
#undef FM_VEC
#define FM_T float
#define FM_TI int
#define FM_T_NAME f
/* floats in 256-bit registers even here: with batches of 32 to 64 samples the 16-lane sums of
 * the weight gradient cost more in their final reduction than they save (measured: 64-wide
 * float32 layers 1.4-1.9x slower than with 8 lanes, which are 1.1x faster than the AVX2 build). */
#define FM_ACC 8
#define FM_VEC fm_vec_f32
#include "_simd_body.h"
#undef FM_T
#undef FM_TI
#undef FM_T_NAME
#undef FM_ACC
#undef FM_VEC
#undef FM_TARGET_ATTR
#undef FM_TARGET_NAME
#endif /* FM_X86_DISPATCH */

/* ---- the table of chosen versions ---- */
typedef struct {
    void (*forward_layer_d)(double*, double*, const double*, const double*, const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int, double);
    void (*forward_layer_f)(float*, float*, const float*, const float*, const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int, float);
    void (*delta_prev_d)(double*, const double*, const double*, const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t);
    void (*delta_prev_f)(float*, const float*, const float*, const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t);
    void (*grad_w_d)(double*, double*, const double*, const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, double, double, double);
    void (*grad_w_f)(float*, float*, const float*, const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, float, float, float);
    void (*grad_b_d)(double*, const double*, Py_ssize_t, Py_ssize_t, double, double);
    void (*grad_b_f)(float*, const float*, Py_ssize_t, Py_ssize_t, float, float);
    double (*loss_bce_d)(const double*, const double*, const double*, Py_ssize_t, Py_ssize_t, double, double*);
    double (*loss_bce_f)(const float*, const float*, const float*, Py_ssize_t, Py_ssize_t, float, float*);
    double (*loss_ce_d)(const double*, const double*, const double*, Py_ssize_t, Py_ssize_t, double, double, double, double*);
    double (*loss_ce_f)(const float*, const float*, const float*, Py_ssize_t, Py_ssize_t, float, float, float, float*);
    int (*activate_smooth_d)(int, double*, double*, Py_ssize_t);
    int (*activate_smooth_f)(int, float*, float*, Py_ssize_t);
} fm_table_t;

static fm_table_t fm_loops;
static int fm_level = -1;

#define FM_FILL(target) do { \
    fm_loops.forward_layer_d = forward_layer_d_##target; \
    fm_loops.forward_layer_f = forward_layer_f_##target; \
    fm_loops.delta_prev_d = delta_prev_d_##target; \
    fm_loops.delta_prev_f = delta_prev_f_##target; \
    fm_loops.grad_w_d = grad_w_d_##target; \
    fm_loops.grad_w_f = grad_w_f_##target; \
    fm_loops.grad_b_d = grad_b_d_##target; \
    fm_loops.grad_b_f = grad_b_f_##target; \
    fm_loops.loss_bce_d = loss_bce_d_##target; \
    fm_loops.loss_bce_f = loss_bce_f_##target; \
    fm_loops.loss_ce_d = loss_ce_d_##target; \
    fm_loops.loss_ce_f = loss_ce_f_##target; \
    fm_loops.activate_smooth_d = activate_smooth_d_##target; \
    fm_loops.activate_smooth_f = activate_smooth_f_##target; \
} while (0)

/* The widest level this CPU (and OS) runs: 0 baseline, 1 avx2 (+fma), 2 avx512. */
static int fm_cpu_max(void) {
#if FM_X86_DISPATCH
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
        return 2;
    return 1;
#else
    return 0;
#endif
}

/* Use the versions of ``level``; -1 (and no change) if this CPU or build cannot run them. */
static int fm_select(int level) {
    if (level < 0 || level > fm_cpu_max())
        return -1;
    switch (level) {
#if FM_X86_DISPATCH
    case 2: FM_FILL(avx512); break;
    case 1: FM_FILL(avx2); break;
#endif
    default: FM_FILL(baseline); break;
    }
    fm_level = level;
    return 0;
}

#endif /* FASTMLP_SIMD_H */
