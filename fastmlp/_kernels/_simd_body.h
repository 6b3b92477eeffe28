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

/* C[i, r] += sum_k B[i * si + k * sk] X[k, r] for i < n, r < m, k < K: C (n, m) and X (K, m)
 * row-major, B read through strides (si, sk) so the same kernel serves W and W.T. A tile of four
 * rows by two registers of samples of C stays in registers over all k. */
static FM_INLINE FM_TARGET_ATTR void FM_NAME(gemm_nn)(
        FM_T* FM_RESTRICT C, const FM_T* FM_RESTRICT B, Py_ssize_t si, Py_ssize_t sk,
        const FM_T* FM_RESTRICT X, Py_ssize_t n, Py_ssize_t K, Py_ssize_t m) {
    Py_ssize_t i = 0, k, r, t;
    int q;
    for (; i + 4 <= n; i += 4) {
        FM_T* c0 = C + i * m;
        const FM_T* b = B + i * si;
        for (r = 0; r + 2 * FM_ACC <= m; r += 2 * FM_ACC) {
            FM_VEC a0, a1, a2, a3, e0, e1, e2, e3, x, y;
            FM_VLOAD(a0, c0 + r); FM_VLOAD(e0, c0 + r + FM_ACC);
            FM_VLOAD(a1, c0 + m + r); FM_VLOAD(e1, c0 + m + r + FM_ACC);
            FM_VLOAD(a2, c0 + 2 * m + r); FM_VLOAD(e2, c0 + 2 * m + r + FM_ACC);
            FM_VLOAD(a3, c0 + 3 * m + r); FM_VLOAD(e3, c0 + 3 * m + r + FM_ACC);
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
            FM_VSTORE(c0 + r, a0); FM_VSTORE(c0 + r + FM_ACC, e0);
            FM_VSTORE(c0 + m + r, a1); FM_VSTORE(c0 + m + r + FM_ACC, e1);
            FM_VSTORE(c0 + 2 * m + r, a2); FM_VSTORE(c0 + 2 * m + r + FM_ACC, e2);
            FM_VSTORE(c0 + 3 * m + r, a3); FM_VSTORE(c0 + 3 * m + r + FM_ACC, e3);
        }
        for (; r + FM_ACC <= m; r += FM_ACC) {
            FM_VEC a0, a1, a2, a3, x;
            FM_VLOAD(a0, c0 + r);
            FM_VLOAD(a1, c0 + m + r);
            FM_VLOAD(a2, c0 + 2 * m + r);
            FM_VLOAD(a3, c0 + 3 * m + r);
            for (k = 0; k < K; k++) {
                FM_VLOAD(x, X + k * m + r);
                FM_VFMA(a0, b[k * sk], x);
                FM_VFMA(a1, b[si + k * sk], x);
                FM_VFMA(a2, b[2 * si + k * sk], x);
                FM_VFMA(a3, b[3 * si + k * sk], x);
            }
            FM_VSTORE(c0 + r, a0);
            FM_VSTORE(c0 + m + r, a1);
            FM_VSTORE(c0 + 2 * m + r, a2);
            FM_VSTORE(c0 + 3 * m + r, a3);
        }
        if (r < m)   /* the ragged end of the batch */
            for (q = 0; q < 4; q++)
                for (k = 0; k < K; k++) {
                    const FM_T w = b[q * si + k * sk];
                    for (t = r; t < m; t++)
                        c0[q * m + t] += w * X[k * m + t];
                }
    }
    for (; i < n; i++)
        for (k = 0; k < K; k++) {
            const FM_T w = B[i * si + k * sk];
            for (r = 0; r < m; r++)
                C[i * m + r] += w * X[k * m + r];
        }
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

/* The FM_ACC partial sums in the lanes of a, added pairwise, plus the ragged end: the n - r0 <
 * FM_ACC terms x[t] y[t] (x[t] when y is NULL) summed in turn. */
#define FM_REDUCE_INTO(out, a, x, y, r0, n) do { \
    FM_T s_[FM_ACC], tail_ = 0; int l_, w_; Py_ssize_t t_; \
    FM_NAME(lanes)(s_, a); \
    for (t_ = (r0); t_ < (n); t_++) tail_ += (y) ? (x)[t_] * (y)[t_] : (x)[t_]; \
    for (w_ = FM_ACC / 2; w_ >= 1; w_ /= 2) \
        for (l_ = 0; l_ < w_; l_++) s_[l_] += s_[l_ + w_]; \
    (out) = s_[0] + tail_; \
} while (0)

/* Z += W.T @ A: Z (n_out, m) already holds the bias, A (n_in, m), W (n_in, n_out). */
static FM_TARGET_ATTR void FM_NAME(forward_product)(
        FM_T* Z, const FM_T* W, const FM_T* A, Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out) {
    FM_NAME(gemm_nn)(Z, W, 1, n_out, A, n_out, n_in, m);
}

/* out := (W @ delta) * D: out and D (n_in, m), delta (n_out, m), W (n_in, n_out). */
static FM_TARGET_ATTR void FM_NAME(delta_prev)(
        FM_T* out, const FM_T* W, const FM_T* delta, const FM_T* D,
        Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out) {
    Py_ssize_t r;
    memset(out, 0, (size_t) (m * n_in) * sizeof(FM_T));
    FM_NAME(gemm_nn)(out, W, n_out, 1, delta, n_in, n_out, m);
    for (r = 0; r < m * n_in; r++)
        out[r] *= D[r];
}

/* gW := alpha * A @ delta.T + beta_w * gW (gW (n_in, n_out)); a beta_w of 0 ignores gW. Two rows
 * of A by two of delta at a time: four sums over the batch share their loads. */
static FM_TARGET_ATTR void FM_NAME(grad_w)(
        FM_T* gW, const FM_T* A, const FM_T* delta, Py_ssize_t m, Py_ssize_t n_in,
        Py_ssize_t n_out, FM_T alpha, FM_T beta_w) {
    Py_ssize_t p = 0, j, r, mv = m - m % FM_ACC;
    FM_T s;
    for (; p < n_in; p += 2) {
        const int two_p = p + 1 < n_in;
        const FM_T* x0 = A + p * m;
        const FM_T* x1 = A + (two_p ? p + 1 : p) * m;
        for (j = 0; j < n_out; j += 2) {
            const int two_j = j + 1 < n_out;
            const FM_T* y0 = delta + j * m;
            const FM_T* y1 = delta + (two_j ? j + 1 : j) * m;
            FM_VEC a00, a01, a10, a11, u0, u1, v0, v1;
            FM_VZERO(a00); FM_VZERO(a01); FM_VZERO(a10); FM_VZERO(a11);
            for (r = 0; r < mv; r += FM_ACC) {
                FM_VLOAD(u0, x0 + r); FM_VLOAD(u1, x1 + r);
                FM_VLOAD(v0, y0 + r); FM_VLOAD(v1, y1 + r);
                FM_VFMA_V(a00, u0, v0); FM_VFMA_V(a01, u0, v1);
                FM_VFMA_V(a10, u1, v0); FM_VFMA_V(a11, u1, v1);
            }
#define FM_STORE_G(row, col, acc, x, y) do { \
                FM_T* g_ = gW + (row) * n_out + (col); \
                FM_REDUCE_INTO(s, acc, x, y, mv, m); \
                *g_ = alpha * s + (beta_w != 0 ? beta_w * *g_ : 0); } while (0)
            FM_STORE_G(p, j, a00, x0, y0);
            if (two_j) FM_STORE_G(p, j + 1, a01, x0, y1);
            if (two_p) FM_STORE_G(p + 1, j, a10, x1, y0);
            if (two_p && two_j) FM_STORE_G(p + 1, j + 1, a11, x1, y1);
#undef FM_STORE_G
        }
    }
}

/* gb := alpha * (row sums of delta) + beta_b * gb, delta (n_out, m); a beta_b of 0 ignores gb. */
static FM_TARGET_ATTR void FM_NAME(grad_b)(
        FM_T* gb, const FM_T* delta, Py_ssize_t m, Py_ssize_t n_out, FM_T alpha, FM_T beta_b) {
    Py_ssize_t j, r, mv = m - m % FM_ACC;
    FM_T s;
    for (j = 0; j < n_out; j++) {
        const FM_T* x = delta + j * m;
        const FM_T* none = NULL;
        FM_VEC a, u;
        FM_VZERO(a);
        for (r = 0; r < mv; r += FM_ACC) {
            FM_VLOAD(u, x + r);
            FM_VADD(a, u);
        }
        FM_REDUCE_INTO(s, a, x, none, mv, m);
        gb[j] = alpha * s + (beta_b != 0 ? beta_b * gb[j] : 0);
    }
}
