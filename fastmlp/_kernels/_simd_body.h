/* The dense layer's batch loops, written once. Included by _simd.h once per element type FM_T
 * (double, float) and per target FM_TARGET_ATTR (baseline, avx2, avx512); FM_NAME(fn) makes the
 * name unique, e.g. axpy_rows_d_avx2. No include guard, on purpose.
 *
 * Layout (see _dense.pyx): batches are feature-major, unit j of the m samples is one contiguous
 * row, so every inner loop runs over the batch; W keeps its (n_in, n_out) row-major shape. */

/* out[r] += sum_p W[p * stride] X[p * m + r] over p < k, for r < m: four rows of X per pass
 * (out stays in registers), in the order p = 0, 1, 2, ... for every r. */
static inline FM_TARGET_ATTR void FM_NAME(axpy_rows)(
        FM_T* FM_RESTRICT out, const FM_T* FM_RESTRICT W, Py_ssize_t stride,
        const FM_T* FM_RESTRICT X, Py_ssize_t k, Py_ssize_t m) {
    Py_ssize_t p = 0, r;
    for (; p + 4 <= k; p += 4) {
        const FM_T w0 = W[p * stride], w1 = W[(p + 1) * stride];
        const FM_T w2 = W[(p + 2) * stride], w3 = W[(p + 3) * stride];
        const FM_T* FM_RESTRICT x0 = X + p * m;
        const FM_T* FM_RESTRICT x1 = x0 + m;
        const FM_T* FM_RESTRICT x2 = x1 + m;
        const FM_T* FM_RESTRICT x3 = x2 + m;
        for (r = 0; r < m; r++)
            out[r] = (((out[r] + w0 * x0[r]) + w1 * x1[r]) + w2 * x2[r]) + w3 * x3[r];
    }
    for (; p < k; p++) {
        const FM_T w0 = W[p * stride];
        const FM_T* FM_RESTRICT x0 = X + p * m;
        for (r = 0; r < m; r++)
            out[r] += w0 * x0[r];
    }
}

/* sum_i x[i] y[i] in FM_ACC interleaved partial sums, added pairwise at the end. */
static inline FM_TARGET_ATTR FM_T FM_NAME(dot)(const FM_T* FM_RESTRICT x,
                                               const FM_T* FM_RESTRICT y, Py_ssize_t n) {
    FM_T s[FM_ACC];
    Py_ssize_t i = 0;
    int l, w;
    for (l = 0; l < FM_ACC; l++)
        s[l] = 0;
    for (; i + FM_ACC <= n; i += FM_ACC)
        for (l = 0; l < FM_ACC; l++)
            s[l] += x[i + l] * y[i + l];
    for (l = 0; i < n; i++, l++)
        s[l] += x[i] * y[i];
    for (w = FM_ACC / 2; w >= 1; w /= 2)
        for (l = 0; l < w; l++)
            s[l] += s[l + w];
    return s[0];
}

/* sum_i x[i], in the same order as dot. */
static inline FM_TARGET_ATTR FM_T FM_NAME(row_sum)(const FM_T* FM_RESTRICT x, Py_ssize_t n) {
    FM_T s[FM_ACC];
    Py_ssize_t i = 0;
    int l, w;
    for (l = 0; l < FM_ACC; l++)
        s[l] = 0;
    for (; i + FM_ACC <= n; i += FM_ACC)
        for (l = 0; l < FM_ACC; l++)
            s[l] += x[i + l];
    for (l = 0; i < n; i++, l++)
        s[l] += x[i];
    for (w = FM_ACC / 2; w >= 1; w /= 2)
        for (l = 0; l < w; l++)
            s[l] += s[l + w];
    return s[0];
}

/* Z += W.T @ A: Z (n_out, m) already holds the bias, A (n_in, m), W (n_in, n_out). */
static FM_TARGET_ATTR void FM_NAME(forward_product)(
        FM_T* Z, const FM_T* W, const FM_T* A, Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out) {
    Py_ssize_t j;
    for (j = 0; j < n_out; j++)
        FM_NAME(axpy_rows)(Z + j * m, W + j, n_out, A, n_in, m);
}

/* out := (W @ delta) * D: out and D (n_in, m), delta (n_out, m), W (n_in, n_out). */
static FM_TARGET_ATTR void FM_NAME(delta_prev)(
        FM_T* out, const FM_T* W, const FM_T* delta, const FM_T* D,
        Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out) {
    Py_ssize_t p, r;
    for (p = 0; p < n_in; p++) {
        FM_T* FM_RESTRICT o = out + p * m;
        const FM_T* FM_RESTRICT d = D + p * m;
        memset(o, 0, (size_t) m * sizeof(FM_T));
        FM_NAME(axpy_rows)(o, W + p * n_out, 1, delta, n_out, m);
        for (r = 0; r < m; r++)
            o[r] *= d[r];
    }
}

/* gW := alpha * A @ delta.T + beta_w * gW (gW (n_in, n_out)); a beta_w of 0 ignores gW. */
static FM_TARGET_ATTR void FM_NAME(grad_w)(
        FM_T* gW, const FM_T* A, const FM_T* delta, Py_ssize_t m, Py_ssize_t n_in,
        Py_ssize_t n_out, FM_T alpha, FM_T beta_w) {
    Py_ssize_t p, j;
    for (p = 0; p < n_in; p++) {
        FM_T* g = gW + p * n_out;
        for (j = 0; j < n_out; j++)
            g[j] = alpha * FM_NAME(dot)(A + p * m, delta + j * m, m)
                   + (beta_w != 0 ? beta_w * g[j] : 0);
    }
}

/* gb := alpha * (row sums of delta) + beta_b * gb, delta (n_out, m); a beta_b of 0 ignores gb. */
static FM_TARGET_ATTR void FM_NAME(grad_b)(
        FM_T* gb, const FM_T* delta, Py_ssize_t m, Py_ssize_t n_out, FM_T alpha, FM_T beta_b) {
    Py_ssize_t j;
    for (j = 0; j < n_out; j++)
        gb[j] = alpha * FM_NAME(row_sum)(delta + j * m, m) + (beta_b != 0 ? beta_b * gb[j] : 0);
}
