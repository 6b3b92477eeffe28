/* The dense layer's batch loops, written once. Included by _simd.h once per element type FM_T
 * (double, float) and per target FM_TARGET_ATTR (baseline, avx2, avx512); FM_NAME(fn) makes the
 * name unique, e.g. grad_w_d_avx2. FM_VEC is a block of FM_ACC elements (see _simd.h). No
 * include guard, on purpose.
 *
 * Layout (see _dense.pyx): batches are feature-major, unit j of the m samples is one contiguous
 * row, so every inner loop runs over the batch; W keeps its (n_in, n_out) row-major shape.
 *
 * Order of the arithmetic: a product's element accumulates its terms k = 0, 1, 2, ... in turn
 * (on every target); a sum over the batch keeps FM_ACC partial sums (lane l takes the samples
 * r = l mod FM_ACC, FM_ACC = the target's register width), adds them pairwise at the end,
 * then the ragged end of the batch.
 * Targets with FMA round each multiply-add once. */

/* The epilogue of a product, applied to a block of results as it leaves the registers:
 * mode 0 (forward): c := act(v) and, when dout is not NULL, dout := act'(v), for act identity,
 * relu or leaky_relu (slope param); mode 1 (delta of the previous layer): c := v * dmul. */
static FM_INLINE FM_TARGET_ATTR void FM_NAME(epilogue_1)(
        FM_T* c, FM_T* dout, const FM_T* dmul, FM_T v, int mode, int act, FM_T param) {
    if (mode == 1) {
        *c = v * *dmul;
        return;
    }
    if (act == FM_ACT_RELU) {
        *c = v > 0 ? v : 0;
        if (dout != NULL) *dout = v > 0 ? 1 : 0;
    } else if (act == FM_ACT_LEAKY_RELU) {
        *c = v > 0 ? v : param * v;
        if (dout != NULL) *dout = v > 0 ? 1 : param;
    } else {
        *c = v;
        if (dout != NULL) *dout = 1;
    }
}

#if FM_VEXT
typedef FM_TI FM_NAME(tiv) __attribute__((vector_size(sizeof(FM_VEC))));

/* The same on one register of FM_ACC results (selects, no branches on the data). */
static FM_INLINE FM_TARGET_ATTR void FM_NAME(epilogue)(
        FM_T* c, FM_T* dout, const FM_T* dmul, FM_VEC v, int mode, int act, FM_T param) {
    FM_VEC one = {0}, slope = {0}, d;
    FM_NAME(tiv) pos;
    if (mode == 1) {
        FM_VLOAD(d, dmul);
        v *= d;
        FM_VSTORE(c, v);
        return;
    }
    one += 1;
    if (act == FM_ACT_RELU || act == FM_ACT_LEAKY_RELU) {
        pos = (FM_NAME(tiv)) (v > 0);
        slope += (act == FM_ACT_RELU ? 0 : param);
        if (dout != NULL) {
            d = (FM_VEC) ((pos & (FM_NAME(tiv)) one) | (~pos & (FM_NAME(tiv)) slope));
            FM_VSTORE(dout, d);
        }
        /* relu keeps relu(nan) = 0, as the scalar code did */
        v = act == FM_ACT_RELU ? (FM_VEC) (pos & (FM_NAME(tiv)) v)
            : (FM_VEC) ((pos & (FM_NAME(tiv)) v) | (~pos & (FM_NAME(tiv)) (slope * v)));
    } else if (dout != NULL) {
        FM_VSTORE(dout, one);
    }
    FM_VSTORE(c, v);
}
#define FM_EPILOGUE(c, dout, dmul, v) \
    FM_NAME(epilogue)((c), (dout), (dmul), (v), mode, act, param)
#else
#define FM_EPILOGUE(c, dout, dmul, v) do { int l__; FM_T* dd__ = (dout); \
    const FM_T* dm__ = (dmul); \
    for (l__ = 0; l__ < FM_ACC; l__++) \
        FM_NAME(epilogue_1)((c) + l__, dd__ ? dd__ + l__ : NULL, dm__ ? dm__ + l__ : NULL, \
                            FM_LANE(v, l__), mode, act, param); } while (0)
#endif

/* C[i, r] := epilogue(init_i + sum_k B[i * si + k * sk] X[k, r]) for i < n, r < m, k < K: C
 * (n, m) and X (K, m) row-major, B read through strides (si, sk) so the same kernel serves W
 * and W.T; init_i = bias[i], or 0 when bias is NULL. In mode 0 the epilogue applies the
 * activation (and writes its derivative to Dout (n, m) unless NULL), in mode 1 it multiplies
 * by Dmul (n, m) (see epilogue). A tile of four rows by two registers of samples of C stays in
 * registers over all k; C is written once, by the epilogue. */
static FM_INLINE FM_TARGET_ATTR void FM_NAME(gemm_ep)(
        FM_T* FM_RESTRICT C, const FM_T* FM_RESTRICT B, Py_ssize_t si, Py_ssize_t sk,
        const FM_T* FM_RESTRICT X, Py_ssize_t n, Py_ssize_t K, Py_ssize_t m,
        const FM_T* FM_RESTRICT bias, int mode, int act, FM_T param,
        FM_T* FM_RESTRICT Dout, const FM_T* FM_RESTRICT Dmul) {
    Py_ssize_t i = 0, k, r, t;
    int q;
#define FM_DO(base) ((Dout) != NULL ? (Dout) + (base) : NULL)
#define FM_DM(base) ((Dmul) != NULL ? (Dmul) + (base) : NULL)
#define FM_INIT(i_) ((bias) != NULL ? (bias)[i_] : (FM_T) 0)
    for (; i + 4 <= n; i += 4) {
        FM_T* c0 = C + i * m;
        const FM_T* b = B + i * si;
        const Py_ssize_t o = i * m;
        const FM_T h0 = FM_INIT(i), h1 = FM_INIT(i + 1), h2 = FM_INIT(i + 2), h3 = FM_INIT(i + 3);
        for (r = 0; r + 2 * FM_ACC <= m; r += 2 * FM_ACC) {
            FM_VEC a0, a1, a2, a3, e0, e1, e2, e3, x, y;
            FM_VZERO(a0); FM_VZERO(a1); FM_VZERO(a2); FM_VZERO(a3);
            FM_VADD_S(a0, h0); FM_VADD_S(a1, h1); FM_VADD_S(a2, h2); FM_VADD_S(a3, h3);
            e0 = a0; e1 = a1; e2 = a2; e3 = a3;
            for (k = 0; k < K; k++) {
                const FM_T b0 = b[k * sk], b1 = b[si + k * sk];
                const FM_T b2 = b[2 * si + k * sk], b3 = b[3 * si + k * sk];
                FM_VLOAD(x, X + k * m + r);
                FM_VLOAD(y, X + k * m + r + FM_ACC);
                FM_VFMA(a0, b0, x); FM_VFMA(e0, b0, y);
                FM_VFMA(a1, b1, x); FM_VFMA(e1, b1, y);
                FM_VFMA(a2, b2, x); FM_VFMA(e2, b2, y);
                FM_VFMA(a3, b3, x); FM_VFMA(e3, b3, y);
            }
            FM_EPILOGUE(c0 + r, FM_DO(o + r), FM_DM(o + r), a0);
            FM_EPILOGUE(c0 + r + FM_ACC, FM_DO(o + r + FM_ACC), FM_DM(o + r + FM_ACC), e0);
            FM_EPILOGUE(c0 + m + r, FM_DO(o + m + r), FM_DM(o + m + r), a1);
            FM_EPILOGUE(c0 + m + r + FM_ACC, FM_DO(o + m + r + FM_ACC), FM_DM(o + m + r + FM_ACC), e1);
            FM_EPILOGUE(c0 + 2 * m + r, FM_DO(o + 2 * m + r), FM_DM(o + 2 * m + r), a2);
            FM_EPILOGUE(c0 + 2 * m + r + FM_ACC, FM_DO(o + 2 * m + r + FM_ACC),
                        FM_DM(o + 2 * m + r + FM_ACC), e2);
            FM_EPILOGUE(c0 + 3 * m + r, FM_DO(o + 3 * m + r), FM_DM(o + 3 * m + r), a3);
            FM_EPILOGUE(c0 + 3 * m + r + FM_ACC, FM_DO(o + 3 * m + r + FM_ACC),
                        FM_DM(o + 3 * m + r + FM_ACC), e3);
        }
        /* then single registers; a ragged end of a batch of at least FM_ACC samples is one
         * more register ending at m, overlapping the one before: its lanes there are computed
         * again from the same inputs, in the same order, and rewritten with the same values */
        for (; r < m && m >= FM_ACC; r += FM_ACC) {
            FM_VEC a0, a1, a2, a3, x;
            if (r + FM_ACC > m)
                r = m - FM_ACC;
            FM_VZERO(a0); FM_VZERO(a1); FM_VZERO(a2); FM_VZERO(a3);
            FM_VADD_S(a0, h0); FM_VADD_S(a1, h1); FM_VADD_S(a2, h2); FM_VADD_S(a3, h3);
            for (k = 0; k < K; k++) {
                FM_VLOAD(x, X + k * m + r);
                FM_VFMA(a0, b[k * sk], x);
                FM_VFMA(a1, b[si + k * sk], x);
                FM_VFMA(a2, b[2 * si + k * sk], x);
                FM_VFMA(a3, b[3 * si + k * sk], x);
            }
            FM_EPILOGUE(c0 + r, FM_DO(o + r), FM_DM(o + r), a0);
            FM_EPILOGUE(c0 + m + r, FM_DO(o + m + r), FM_DM(o + m + r), a1);
            FM_EPILOGUE(c0 + 2 * m + r, FM_DO(o + 2 * m + r), FM_DM(o + 2 * m + r), a2);
            FM_EPILOGUE(c0 + 3 * m + r, FM_DO(o + 3 * m + r), FM_DM(o + 3 * m + r), a3);
        }
        for (; r < m; r++)   /* a batch of fewer than FM_ACC samples */
            for (q = 0; q < 4; q++) {
                FM_T v = FM_INIT(i + q);
                for (k = 0; k < K; k++)
                    v += b[q * si + k * sk] * X[k * m + r];
                FM_NAME(epilogue_1)(c0 + q * m + r, FM_DO(o + q * m + r), FM_DM(o + q * m + r),
                                    v, mode, act, param);
            }
    }
    for (; i < n; i++) {   /* the last rows, one at a time */
        FM_T* c0 = C + i * m;
        const FM_T* b = B + i * si;
        const Py_ssize_t o = i * m;
        const FM_T h0 = FM_INIT(i);
        for (r = 0; r < m && m >= FM_ACC; r += FM_ACC) {   /* overlapping end, as above */
            FM_VEC a0, x;
            if (r + FM_ACC > m)
                r = m - FM_ACC;
            FM_VZERO(a0);
            FM_VADD_S(a0, h0);
            for (k = 0; k < K; k++) {
                FM_VLOAD(x, X + k * m + r);
                FM_VFMA(a0, b[k * sk], x);
            }
            FM_EPILOGUE(c0 + r, FM_DO(o + r), FM_DM(o + r), a0);
        }
        for (t = r; t < m; t++) {
            FM_T v = h0;
            for (k = 0; k < K; k++)
                v += b[k * sk] * X[k * m + t];
            FM_NAME(epilogue_1)(c0 + t, FM_DO(o + t), FM_DM(o + t), v, mode, act, param);
        }
    }
#undef FM_DO
#undef FM_DM
#undef FM_INIT
}

/* s[l] := lane l of a, by constant indices (copying the register through memory made GCC keep
 * the accumulators in memory through the loop). */
static FM_INLINE FM_TARGET_ATTR void FM_NAME(lanes)(FM_T* s, FM_VEC a) {
    s[0] = FM_LANE(a, 0); s[1] = FM_LANE(a, 1);
#if FM_ACC > 2
    s[2] = FM_LANE(a, 2); s[3] = FM_LANE(a, 3);
#endif
#if FM_ACC > 4
    s[4] = FM_LANE(a, 4); s[5] = FM_LANE(a, 5); s[6] = FM_LANE(a, 6); s[7] = FM_LANE(a, 7);
#endif
#if FM_ACC > 8
    s[8] = FM_LANE(a, 8); s[9] = FM_LANE(a, 9); s[10] = FM_LANE(a, 10); s[11] = FM_LANE(a, 11);
    s[12] = FM_LANE(a, 12); s[13] = FM_LANE(a, 13); s[14] = FM_LANE(a, 14); s[15] = FM_LANE(a, 15);
#endif
}


/* Z := act(W.T @ A + b) and, when D is not NULL, D := act'(W.T @ A + b): Z and D (n_out, m),
 * A (n_in, m), W (n_in, n_out); act is identity, relu or leaky_relu (slope param); other
 * activations pass identity and D NULL, and are applied afterwards. Bias, product, activation
 * and derivative are one pass: Z is written once. */
static FM_TARGET_ATTR void FM_NAME(forward_layer)(
        FM_T* Z, FM_T* D, const FM_T* W, const FM_T* b, const FM_T* A, Py_ssize_t m,
        Py_ssize_t n_in, Py_ssize_t n_out, int act, FM_T param) {
    FM_NAME(gemm_ep)(Z, W, 1, n_out, A, n_out, n_in, m, b, 0, act, param, D, NULL);
}

/* out := (W @ delta) * D: out and D (n_in, m), delta (n_out, m), W (n_in, n_out). */
static FM_TARGET_ATTR void FM_NAME(delta_prev)(
        FM_T* out, const FM_T* W, const FM_T* delta, const FM_T* D,
        Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out) {
    FM_NAME(gemm_ep)(out, W, n_out, 1, delta, n_in, n_out, m, NULL, 1, FM_ACT_IDENTITY, 0,
                     NULL, D);
}

/* out[0..3] := the sums of the lanes of a, b, c, d, each added pairwise (lane l + lane l +
 * FM_ACC/2, then the same on the first half, ..., as the sums over the batch always were): with shuffles, the four
 * reductions share their additions (a transposition tree); without, lane by lane. */
static FM_VINLINE FM_TARGET_ATTR void FM_NAME(reduce4)(FM_T* out, FM_VEC a, FM_VEC b, FM_VEC c,
                                                      FM_VEC d) {
#if FM_VEXT && FM_SHUFFLE && FM_ACC == 2
    const FM_VEC ab = __builtin_shufflevector(a, b, 0, 2) + __builtin_shufflevector(a, b, 1, 3);
    const FM_VEC cd = __builtin_shufflevector(c, d, 0, 2) + __builtin_shufflevector(c, d, 1, 3);
    out[0] = ab[0]; out[1] = ab[1]; out[2] = cd[0]; out[3] = cd[1];
#elif FM_VEXT && FM_SHUFFLE && FM_ACC == 4
    const FM_VEC ab = __builtin_shufflevector(a, b, 0, 1, 4, 5)
        + __builtin_shufflevector(a, b, 2, 3, 6, 7);
    const FM_VEC cd = __builtin_shufflevector(c, d, 0, 1, 4, 5)
        + __builtin_shufflevector(c, d, 2, 3, 6, 7);
    const FM_VEC r = __builtin_shufflevector(ab, cd, 0, 2, 4, 6)
        + __builtin_shufflevector(ab, cd, 1, 3, 5, 7);
    FM_VSTORE(out, r);
#elif FM_VEXT && FM_SHUFFLE && FM_ACC == 8
    const FM_VEC ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11)
        + __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    const FM_VEC cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 8, 9, 10, 11)
        + __builtin_shufflevector(c, d, 4, 5, 6, 7, 12, 13, 14, 15);
    const FM_VEC q = __builtin_shufflevector(ab, cd, 0, 1, 4, 5, 8, 9, 12, 13)
        + __builtin_shufflevector(ab, cd, 2, 3, 6, 7, 10, 11, 14, 15);
    const FM_VEC r = __builtin_shufflevector(q, q, 0, 2, 4, 6, 0, 2, 4, 6)
        + __builtin_shufflevector(q, q, 1, 3, 5, 7, 1, 3, 5, 7);
    out[0] = r[0]; out[1] = r[1]; out[2] = r[2]; out[3] = r[3];
#else
    FM_T s_[4][FM_ACC];
    int l_, w_, q_;
    FM_NAME(lanes)(s_[0], a); FM_NAME(lanes)(s_[1], b);
    FM_NAME(lanes)(s_[2], c); FM_NAME(lanes)(s_[3], d);
    for (q_ = 0; q_ < 4; q_++) {
        for (w_ = FM_ACC / 2; w_ >= 1; w_ /= 2)
            for (l_ = 0; l_ < w_; l_++) s_[q_][l_] += s_[q_][l_ + w_];
        out[q_] = s_[q_][0];
    }
#endif
}

/* gW := alpha * A @ delta.T + beta_w * gW (gW (n_in, n_out)); a beta_w of 0 ignores gW. Two rows
 * of A by two of delta at a time: four sums over the batch share their loads, and their
 * reduction (reduce4), then take the ragged end of the batch. When gb is not NULL, also gb :=
 * alpha * (row sums of delta) + beta_b * gb (as grad_b, bit for bit), summed during the pass
 * over the first two rows of A, which loads every row of delta anyway. */
static FM_TARGET_ATTR void FM_NAME(grad_w)(
        FM_T* gW, FM_T* gb, const FM_T* A, const FM_T* delta, Py_ssize_t m, Py_ssize_t n_in,
        Py_ssize_t n_out, FM_T alpha, FM_T beta_w, FM_T beta_b) {
    Py_ssize_t p = 0, j, r, mv = m - m % FM_ACC;
    const int keep = beta_w != 0, keep_b = beta_b != 0;
    FM_T s4[4];
    for (; p < n_in; p += 2) {
        const int two_p = p + 1 < n_in;
        const int bias = p == 0 && gb != NULL;
        const FM_T* x0 = A + p * m;
        const FM_T* x1 = A + (two_p ? p + 1 : p) * m;
        for (j = 0; j < n_out; j += 2) {
            const int two_j = j + 1 < n_out;
            const FM_T* y0 = delta + j * m;
            const FM_T* y1 = delta + (two_j ? j + 1 : j) * m;
            FM_VEC a00, a01, a10, a11, u0, u1, v0, v1;
            FM_T t00 = 0, t01 = 0, t10 = 0, t11 = 0;
            FM_VZERO(a00); FM_VZERO(a01); FM_VZERO(a10); FM_VZERO(a11);
            if (bias) {
                FM_VEC c0, c1;
                FM_T tb0 = 0, tb1 = 0;
                FM_VZERO(c0); FM_VZERO(c1);
                for (r = 0; r < mv; r += FM_ACC) {
                    FM_VLOAD(u0, x0 + r); FM_VLOAD(u1, x1 + r);
                    FM_VLOAD(v0, y0 + r); FM_VLOAD(v1, y1 + r);
                    FM_VFMA_V(a00, u0, v0); FM_VFMA_V(a01, u0, v1);
                    FM_VFMA_V(a10, u1, v0); FM_VFMA_V(a11, u1, v1);
                    FM_VADD(c0, v0); FM_VADD(c1, v1);
                }
                for (r = mv; r < m; r++) {
                    tb0 += y0[r]; tb1 += y1[r];
                }
                FM_NAME(reduce4)(s4, c0, c1, c0, c1);
                gb[j] = alpha * (s4[0] + tb0) + (keep_b ? beta_b * gb[j] : 0);
                if (two_j)
                    gb[j + 1] = alpha * (s4[1] + tb1) + (keep_b ? beta_b * gb[j + 1] : 0);
            } else {
                for (r = 0; r < mv; r += FM_ACC) {
                    FM_VLOAD(u0, x0 + r); FM_VLOAD(u1, x1 + r);
                    FM_VLOAD(v0, y0 + r); FM_VLOAD(v1, y1 + r);
                    FM_VFMA_V(a00, u0, v0); FM_VFMA_V(a01, u0, v1);
                    FM_VFMA_V(a10, u1, v0); FM_VFMA_V(a11, u1, v1);
                }
            }
            for (r = mv; r < m; r++) {
                t00 += x0[r] * y0[r]; t01 += x0[r] * y1[r];
                t10 += x1[r] * y0[r]; t11 += x1[r] * y1[r];
            }
            FM_NAME(reduce4)(s4, a00, a01, a10, a11);
#define FM_STORE_G(row, col, s) do { \
                FM_T* g_ = gW + (row) * n_out + (col); \
                *g_ = alpha * (s) + (keep ? beta_w * *g_ : 0); } while (0)
            FM_STORE_G(p, j, s4[0] + t00);
            if (two_j) FM_STORE_G(p, j + 1, s4[1] + t01);
            if (two_p) FM_STORE_G(p + 1, j, s4[2] + t10);
            if (two_p && two_j) FM_STORE_G(p + 1, j + 1, s4[3] + t11);
#undef FM_STORE_G
        }
    }
}

/* gb := alpha * (row sums of delta) + beta_b * gb, delta (n_out, m); a beta_b of 0 ignores gb.
 * Four rows at a time, reduced together (reduce4). */
static FM_TARGET_ATTR void FM_NAME(grad_b)(
        FM_T* gb, const FM_T* delta, Py_ssize_t m, Py_ssize_t n_out, FM_T alpha, FM_T beta_b) {
    Py_ssize_t j, r, mv = m - m % FM_ACC;
    const int keep = beta_b != 0;
    int q;
    FM_T s4[4];
    for (j = 0; j < n_out; j += 4) {
        const FM_T* x[4];
        FM_T t[4] = {0, 0, 0, 0};
        FM_VEC a0, a1, a2, a3, u;
        for (q = 0; q < 4; q++)
            x[q] = delta + (j + q < n_out ? j + q : j) * m;
        FM_VZERO(a0); FM_VZERO(a1); FM_VZERO(a2); FM_VZERO(a3);
        for (r = 0; r < mv; r += FM_ACC) {
            FM_VLOAD(u, x[0] + r); FM_VADD(a0, u);
            FM_VLOAD(u, x[1] + r); FM_VADD(a1, u);
            FM_VLOAD(u, x[2] + r); FM_VADD(a2, u);
            FM_VLOAD(u, x[3] + r); FM_VADD(a3, u);
        }
        for (q = 0; q < 4; q++)
            for (r = mv; r < m; r++)
                t[q] += x[q][r];
        FM_NAME(reduce4)(s4, a0, a1, a2, a3);
        for (q = 0; q < 4 && j + q < n_out; q++)
            gb[j + q] = alpha * (s4[q] + t[q]) + (keep ? beta_b * gb[j + q] : 0);
    }
}

/* ---- element-wise math on registers: exp, log1p, and the binary cross-entropy loss ----
 * In double precision whatever FM_T: a register of FM_ACC elements of FM_T becomes FM_ACC
 * doubles (__builtin_convertvector), so float32 gets correctly rounded float results of
 * double-precision formulas. exp and log1p follow fdlibm's algorithms (FreeBSD msun e_exp.c and
 * s_log1p.c: the same reductions and polynomial coefficients, errors below 1 ulp), without
 * branches: every lane takes the same path, selects choose per lane. */
#if FM_VMATH
typedef double FM_NAME(dv) __attribute__((vector_size(FM_ACC * 8)));
typedef long long FM_NAME(iv) __attribute__((vector_size(FM_ACC * 8)));
#define FM_DV FM_NAME(dv)
#define FM_IV FM_NAME(iv)

/* mask ? a : b, lane by lane (mask lanes all ones or all zeros) */
static FM_VINLINE FM_TARGET_ATTR FM_DV FM_NAME(vsel)(FM_IV mask, FM_DV a, FM_DV b) {
    return (FM_DV) ((mask & (FM_IV) a) | (~mask & (FM_IV) b));
}

/* exp(x) lane by lane: x = n ln2 + r, |r| <= ln2 / 2, exp(r) by fdlibm's rational form, times
 * 2^n in two factors (so that results down to the subnormals and up to overflow are right);
 * x below -746 gives 0, above 710 inf, nan gives nan. */
static FM_VINLINE FM_TARGET_ATTR FM_DV FM_NAME(vexp)(FM_DV x) {
    const FM_DV zero = {0};
    const double magic = 6755399441055744.0;   /* 1.5 * 2^52: adding it rounds to an integer */
    FM_DV t, nd, hi, lo, r, rr, c, y;
    FM_IV n, n1;
    x = FM_NAME(vsel)((FM_IV) (x < -746.0), zero - 746.0, x);
    x = FM_NAME(vsel)((FM_IV) (x > 710.0), zero + 710.0, x);
    t = x * 1.44269504088896338700e+00 + magic;
    nd = t - magic;
    n = (FM_IV) t - 0x4338000000000000LL;      /* the integer n, from t's low bits */
    hi = x - nd * 6.93147180369123816490e-01;  /* ln2's high part: n * it is exact */
    lo = nd * 1.90821492927058770002e-10;
    r = hi - lo;
    rr = r * r;
    c = r - rr * (1.66666666666666019037e-01 + rr * (-2.77777777770155933842e-03
        + rr * (6.61375632143793436117e-05 + rr * (-1.65339022054652515390e-06
        + rr * 4.13813679705723846039e-08))));
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    n1 = n >> 1;
    return y * (FM_DV) ((n1 + 1023) << 52) * (FM_DV) ((n - n1 + 1023) << 52);
}

/* log1p(e) lane by lane for 0 <= e <= 1 (what exp(-|z|) gives), given u = 1 + e and ru = 1 / u:
 * fdlibm's log1p with the argument reduction of that range written as selects. */
static FM_VINLINE FM_TARGET_ATTR FM_DV FM_NAME(vlog1p_unit)(FM_DV e, FM_DV u, FM_DV ru) {
    const FM_DV zero = {0};
    /* below sqrt(2) - 1 (fdlibm's threshold): log1p(e) = log(1 + f) with f = e exactly;
     * above, 1 + e = 2 (1 + f), f = u / 2 - 1 (exact), with c the rounding error of u */
    const FM_IV small = (FM_IV) (e < 0.41421353816986084);
    const FM_DV f = FM_NAME(vsel)(small, e, 0.5 * u - 1.0);
    const FM_DV c = FM_NAME(vsel)(small, zero, (e - (u - 1.0)) * ru);
    const FM_DV k = FM_NAME(vsel)(small, zero, zero + 1.0);
    const FM_DV hfsq = 0.5 * f * f, s = f / (2.0 + f), z = s * s;
    const FM_DV R = z * (6.666666666666735130e-01 + z * (3.999999999940941908e-01
        + z * (2.857142874366239149e-01 + z * (2.222219843214978396e-01
        + z * (1.818357216161805012e-01 + z * (1.531383769920937332e-01
        + z * 1.479819860511658591e-01))))));
    return k * 6.93147180369123816490e-01
        - ((hfsq - (s * (hfsq + R) + (k * 1.90821492927058770002e-10 + c))) - f);
}

/* One register of the binary cross-entropy: returns w l (l = max(z,0) - y z + log1p(e),
 * e = exp(-|z|)) and sets *delta := (sigmoid(z) - y) * sw, sigmoid(z) = 1 / (1 + e) (z >= 0)
 * or e / (1 + e), from the same e and the same 1 / (1 + e) as the logarithm. */
static FM_VINLINE FM_TARGET_ATTR FM_DV FM_NAME(bce_block)(FM_DV z, FM_DV y, FM_DV w, FM_DV sw,
                                                         FM_DV* delta) {
    const FM_DV zero = {0};
    const FM_IV pos = (FM_IV) (z > 0);
    const FM_DV a = (FM_DV) ((FM_IV) z & 0x7fffffffffffffffLL);
    const FM_DV e = FM_NAME(vexp)(-a);
    const FM_DV u = 1.0 + e;
    const FM_DV ru = 1.0 / u;
    const FM_DV part = FM_NAME(vsel)(pos, z, zero) - y * z + FM_NAME(vlog1p_unit)(e, u, ru);
    *delta = (FM_NAME(vsel)((FM_IV) (z >= 0), zero + 1.0, e) * ru - y) * sw;
    return part * w;
}

/* The sum of a register of partial sums over the batch, added pairwise (the upper half onto
 * the lower, then the same on the lower half, ...), as every sum over the batch is. */
static FM_INLINE FM_TARGET_ATTR double FM_NAME(sum_lanes)(FM_DV acc) {
    double s_[FM_ACC];
    int w_, l;
    memcpy(s_, &acc, sizeof(s_));
    for (w_ = FM_ACC / 2; w_ >= 1; w_ /= 2)
        for (l = 0; l < w_; l++) s_[l] += s_[l + w_];
    return s_[0];
}
#endif

/* The binary cross-entropy of the (n_out, m) logits Z against targets Y: returns sum_r w_r
 * sum_k l_kr (w_r = 1 when w is NULL) and, when delta is not NULL, sets delta[k, r] := scale
 * w_r (sigmoid(z_kr) - y_kr). The sum over the batch keeps one partial sum per lane. */
static FM_TARGET_ATTR double FM_NAME(loss_bce)(
        const FM_T* Z, const FM_T* Y, const FM_T* w, Py_ssize_t m, Py_ssize_t n_out,
        FM_T scale, FM_T* delta) {
    Py_ssize_t k, r;
    double total = 0;
#if FM_VMATH
    Py_ssize_t t;
    FM_DV acc = {0}, dv, wd, one = {0};
    FM_VEC zv, yv, wv;
    FM_T zb[FM_ACC], yb[FM_ACC], wb[FM_ACC], db[FM_ACC];
    int l;
    one += 1.0;
    for (k = 0; k < n_out; k++) {
        const FM_T* z = Z + k * m;
        const FM_T* y = Y + k * m;
        for (r = 0; r + FM_ACC <= m; r += FM_ACC) {
            FM_VLOAD(zv, z + r);
            FM_VLOAD(yv, y + r);
            if (w != NULL) {
                FM_VLOAD(wv, w + r);
                wd = __builtin_convertvector(wv, FM_DV);
            } else {
                wd = one;
            }
            acc += FM_NAME(bce_block)(__builtin_convertvector(zv, FM_DV),
                                      __builtin_convertvector(yv, FM_DV), wd,
                                      wd * (double) scale, &dv);
            if (delta != NULL) {
                FM_VEC d = __builtin_convertvector(dv, FM_VEC);
                FM_VSTORE(delta + k * m + r, d);
            }
        }
        if (r < m) {   /* the ragged end: padded with zeros (finite terms of weight 0) */
            for (l = 0; l < FM_ACC; l++) {
                t = r + l;
                zb[l] = t < m ? z[t] : 0;
                yb[l] = t < m ? y[t] : 0;
                wb[l] = t < m ? (w != NULL ? w[t] : 1) : 0;
            }
            FM_VLOAD(zv, zb); FM_VLOAD(yv, yb); FM_VLOAD(wv, wb);
            wd = __builtin_convertvector(wv, FM_DV);
            acc += FM_NAME(bce_block)(__builtin_convertvector(zv, FM_DV),
                                      __builtin_convertvector(yv, FM_DV), wd,
                                      wd * (double) scale, &dv);
            if (delta != NULL) {
                FM_VEC d = __builtin_convertvector(dv, FM_VEC);
                FM_VSTORE(db, d);
                for (t = r; t < m; t++)
                    delta[k * m + t] = db[t - r];
            }
        }
    }
    total = FM_NAME(sum_lanes)(acc);
#else
    for (k = 0; k < n_out; k++)
        for (r = 0; r < m; r++) {
            const Py_ssize_t i = k * m + r;
            const double z = Z[i], y = Y[i], wr = w != NULL ? w[r] : 1;
            const double e = exp(-fabs(z));
            total += ((z > 0 ? z : 0) - y * z + log1p(e)) * wr;
            if (delta != NULL)
                delta[i] = (FM_T) (((z >= 0 ? 1 : e) / (1 + e) - y) * (wr * (double) scale));
        }
#endif
    return total;
}

/* The sigmoid and tanh activations in place over n elements, with their derivatives into d
 * unless NULL: sigmoid(z) = 1 / (1 + e) (z >= 0) or e / (1 + e), e = exp(-|z|), f' = f (1 - f)
 * (as _activations.pxd); tanh as Cephes computes it: x + x^3 P(x^2) / Q(x^2) below |x| = 0.625,
 * else sign(x) (1 - 2 / (exp(2|x|) + 1)) (relative errors of a few ulp), f' = 1 - f^2. Returns
 * 0, doing nothing, for any other activation. */
#if FM_VMATH
static FM_VINLINE FM_TARGET_ATTR FM_DV FM_NAME(vsmooth)(int act, FM_DV x) {
    const FM_DV zero = {0};
    const FM_DV ax = (FM_DV) ((FM_IV) x & 0x7fffffffffffffffLL);
    if (act == FM_ACT_SIGMOID) {
        const FM_DV e = FM_NAME(vexp)(-ax);
        return FM_NAME(vsel)((FM_IV) (x >= 0), zero + 1.0, e) / (1.0 + e);
    } else {
        const FM_DV s = FM_NAME(vexp)(2.0 * ax);
        const FM_DV big = 1.0 - 2.0 / (s + 1.0);
        const FM_DV zz = x * x;
        const FM_DV p = (-9.64399179425052238628e-1 * zz - 9.92877231001918586564e1) * zz
            - 1.61468768441708447952e3;
        const FM_DV q = ((zz + 1.12811678491632931402e2) * zz + 2.23548839060100448583e3) * zz
            + 4.84406305325125486048e3;
        const FM_DV small = FM_NAME(vsel)((FM_IV) (x == 0), x, x + x * zz * (p / q));
        const FM_DV signed_big = (FM_DV) ((FM_IV) big | ((FM_IV) x & (-0x7fffffffffffffffLL - 1)));
        return FM_NAME(vsel)((FM_IV) (ax >= 0.625), signed_big, small);
    }
}
#endif

static FM_TARGET_ATTR int FM_NAME(activate_smooth)(int act, FM_T* z, FM_T* d, Py_ssize_t n) {
    Py_ssize_t i = 0;
    if (act != FM_ACT_SIGMOID && act != FM_ACT_TANH)
        return 0;
#if FM_VMATH
    {
        FM_VEC v;
        FM_DV a, da;
        FM_T buf[FM_ACC];
        Py_ssize_t l;
        for (; i < n; i += FM_ACC) {
            const Py_ssize_t rem = n - i < FM_ACC ? n - i : FM_ACC;
            if (rem == FM_ACC) {
                FM_VLOAD(v, z + i);
            } else {   /* the ragged end, through a zero-padded buffer */
                memset(buf, 0, sizeof(buf));
                memcpy(buf, z + i, (size_t) rem * sizeof(FM_T));
                FM_VLOAD(v, buf);
            }
            a = FM_NAME(vsmooth)(act, __builtin_convertvector(v, FM_DV));
            v = __builtin_convertvector(a, FM_VEC);
            /* the derivative from the rounded f, as the scalar code */
            a = __builtin_convertvector(v, FM_DV);
            da = act == FM_ACT_SIGMOID ? a * (1.0 - a) : 1.0 - a * a;
            if (rem == FM_ACC) {
                FM_VSTORE(z + i, v);
                if (d != NULL) {
                    FM_VEC dv = __builtin_convertvector(da, FM_VEC);
                    FM_VSTORE(d + i, dv);
                }
            } else {
                FM_VSTORE(buf, v);
                for (l = 0; l < rem; l++) z[i + l] = buf[l];
                if (d != NULL) {
                    FM_VEC dv = __builtin_convertvector(da, FM_VEC);
                    FM_VSTORE(buf, dv);
                    for (l = 0; l < rem; l++) d[i + l] = buf[l];
                }
            }
        }
    }
#else
    for (; i < n; i++) {
        const double x = z[i];
        double a;
        if (act == FM_ACT_SIGMOID) {
            const double e = exp(-fabs(x));
            a = (x >= 0 ? 1 : e) / (1 + e);
        } else {
            a = tanh(x);
        }
        z[i] = (FM_T) a;
        if (d != NULL)
            d[i] = act == FM_ACT_SIGMOID ? z[i] * (1 - z[i]) : 1 - z[i] * z[i];
    }
#endif
    return 1;
}

/* The categorical cross-entropy of softmax(z) against label-smoothed targets t = t_on y + t_off,
 * Z and Y (n_out, m): returns sum_r w_r (logsumexp(z_r) - sum_k t_kr z_kr) and, unless delta is
 * NULL, sets delta[k, r] := scale w_r (softmax(z_r)_k - t_kr), as _loss.pyx's scalar loop
 * (shift by the column's maximum, exp of the shifted logits, their sum's logarithm), a register
 * of samples at a time. */
#if FM_VMATH
/* log(x) lane by lane for normal x > 0 (nan stays nan): fdlibm's log, the exponent and the
 * mantissa from the bits, the mantissa in [sqrt(2)/2, sqrt(2)). */
static FM_VINLINE FM_TARGET_ATTR FM_DV FM_NAME(vlog)(FM_DV x) {
    const FM_IV bits = (FM_IV) x;
    FM_DV mant = (FM_DV) ((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);
    const FM_IV high = (FM_IV) (mant > 1.4142135623730951);
    const FM_DV k = __builtin_convertvector(((bits >> 52) & 0x7ff) - 1023 - high, FM_DV);
    FM_DV f, hfsq, s, z, R, y;
    mant = FM_NAME(vsel)(high, 0.5 * mant, mant);
    f = mant - 1.0;
    hfsq = 0.5 * f * f;
    s = f / (2.0 + f);
    z = s * s;
    R = z * (6.666666666666735130e-01 + z * (3.999999999940941908e-01
        + z * (2.857142874366239149e-01 + z * (2.222219843214978396e-01
        + z * (1.818357216161805012e-01 + z * (1.531383769920937332e-01
        + z * 1.479819860511658591e-01))))));
    y = k * 6.93147180369123816490e-01
        - ((hfsq - (s * (hfsq + R) + k * 1.90821492927058770002e-10)) - f);
    return FM_NAME(vsel)((FM_IV) (x != x), x, y);
}

/* One register of samples r0 .. r0 + FM_ACC - 1 read from Z, Y with row stride ld (the padded
 * copy of a ragged end has its own); delta rows likewise. Returns the weighted losses. */
static FM_VINLINE FM_TARGET_ATTR FM_DV FM_NAME(ce_block)(
        const FM_T* Z, const FM_T* Y, FM_DV w, FM_DV sw, Py_ssize_t ld, Py_ssize_t n_out,
        FM_T t_on, FM_T t_off, FM_T* delta) {
    FM_DV zmax, z, e, sumexp = {0}, lse, part = {0}, y;
    FM_VEC v;
    Py_ssize_t k;
    FM_VLOAD(v, Z);
    zmax = __builtin_convertvector(v, FM_DV);
    for (k = 1; k < n_out; k++) {
        FM_VLOAD(v, Z + k * ld);
        z = __builtin_convertvector(v, FM_DV);
        zmax = FM_NAME(vsel)((FM_IV) (z > zmax), z, zmax);
    }
    for (k = 0; k < n_out; k++) {
        FM_VLOAD(v, Z + k * ld);
        e = FM_NAME(vexp)(__builtin_convertvector(v, FM_DV) - zmax);
        sumexp += e;
        if (delta != NULL) {
            FM_VEC ev = __builtin_convertvector(e, FM_VEC);
            FM_VSTORE(delta + k * ld, ev);
        }
    }
    lse = zmax + FM_NAME(vlog)(sumexp);
    for (k = 0; k < n_out; k++) {
        FM_VLOAD(v, Y + k * ld);
        y = __builtin_convertvector(v, FM_DV) * (double) t_on + (double) t_off;
        FM_VLOAD(v, Z + k * ld);
        part -= y * (__builtin_convertvector(v, FM_DV) - lse);
        if (delta != NULL) {
            FM_VLOAD(v, delta + k * ld);
            v = __builtin_convertvector((__builtin_convertvector(v, FM_DV) / sumexp - y) * sw,
                                        FM_VEC);
            FM_VSTORE(delta + k * ld, v);
        }
    }
    return part * w;
}
#endif

static FM_TARGET_ATTR double FM_NAME(loss_ce)(
        const FM_T* Z, const FM_T* Y, const FM_T* w, Py_ssize_t m, Py_ssize_t n_out,
        FM_T t_on, FM_T t_off, FM_T scale, FM_T* delta) {
    Py_ssize_t r, k;
    double total = 0;
#if FM_VMATH
    FM_DV acc = {0}, wd, one = {0};
    FM_VEC wv;
    Py_ssize_t t;
    one += 1.0;
    for (r = 0; r + FM_ACC <= m; r += FM_ACC) {
        if (w != NULL) {
            FM_VLOAD(wv, w + r);
            wd = __builtin_convertvector(wv, FM_DV);
        } else {
            wd = one;
        }
        acc += FM_NAME(ce_block)(Z + r, Y + r, wd, wd * (double) scale, m, n_out, t_on, t_off,
                                 delta != NULL ? delta + r : NULL);
    }
    if (r < m) {   /* the ragged end: a zero-padded copy, of weight 0 beyond m */
        FM_T zb[16 * FM_ACC], yb[16 * FM_ACC], db[16 * FM_ACC], wb[FM_ACC];
        /* up to 16 outputs: through the padded copy; more: element by element below */
        if (n_out <= 16) {
            memset(zb, 0, sizeof(zb)); memset(yb, 0, sizeof(yb)); memset(wb, 0, sizeof(wb));
            for (k = 0; k < n_out; k++) {
                memcpy(zb + k * FM_ACC, Z + k * m + r, (size_t) (m - r) * sizeof(FM_T));
                memcpy(yb + k * FM_ACC, Y + k * m + r, (size_t) (m - r) * sizeof(FM_T));
            }
            for (t = r; t < m; t++)
                wb[t - r] = w != NULL ? w[t] : 1;
            FM_VLOAD(wv, wb);
            wd = __builtin_convertvector(wv, FM_DV);
            acc += FM_NAME(ce_block)(zb, yb, wd, wd * (double) scale, FM_ACC, n_out, t_on, t_off,
                                     delta != NULL ? db : NULL);
            if (delta != NULL)
                for (k = 0; k < n_out; k++)
                    memcpy(delta + k * m + r, db + k * FM_ACC, (size_t) (m - r) * sizeof(FM_T));
            r = m;
        }
    }
    total = FM_NAME(sum_lanes)(acc);
#else
    r = 0;
#endif
    for (; r < m; r++) {   /* element by element: the portable build, wide ragged ends */
        double zmax = Z[r], sumexp = 0, lse, part = 0;
        const double wr = w != NULL ? w[r] : 1, s = (double) scale * wr;
        for (k = 1; k < n_out; k++)
            if (Z[k * m + r] > zmax) zmax = Z[k * m + r];
        for (k = 0; k < n_out; k++)
            sumexp += exp(Z[k * m + r] - zmax);
        lse = zmax + log(sumexp);
        for (k = 0; k < n_out; k++) {
            const double y = (double) t_on * Y[k * m + r] + (double) t_off;
            part -= y * (Z[k * m + r] - lse);
            if (delta != NULL)
                delta[k * m + r] = (FM_T) ((exp(Z[k * m + r] - zmax) / sumexp - y) * s);
        }
        total += part * wr;
    }
    return total;
}
