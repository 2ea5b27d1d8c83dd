/* Fused single-token kernels for the decode loop (see kernels.py, which compiles this file).
 *
 * Between its four int8 matrix products, a decoder layer does ~40 small torch operations on
 * vectors of 1-6 thousand floats; each costs a few microseconds of dispatch, which is more
 * than its arithmetic, and a frame runs 103 layer steps.  These functions do the same
 * arithmetic in one call each: RMSNorm, residual add + RMSNorm, SiLU-and-multiply, and the
 * whole attention block between the q/k/v product and the output product (per-head q/k
 * RMSNorm, rotary embedding, KV-cache write, softmax attention over the cache).
 *
 * Float32 throughout, in the order the library computes.  Single-threaded on purpose: the
 * vectors are small, and a second OpenMP runtime beside torch's would fight it for the cores.
 * `#pragma omp simd` (with -fopenmp-simd) lets the compiler vectorise the reductions without
 * -ffast-math.
 */
#include <math.h>

static float sum_squares(const float *x, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* out = w * (x / sqrt(mean(x^2) + eps)); w may be NULL (no weight) */
static void norm_into(float *out, const float *x, const float *w, int n, float eps) {
    float r = 1.0f / sqrtf(sum_squares(x, n) / (float)n + eps);
    if (w) {
#pragma omp simd
        for (int i = 0; i < n; i++) out[i] = w[i] * (x[i] * r);
    } else {
#pragma omp simd
        for (int i = 0; i < n; i++) out[i] = x[i] * r;
    }
}

/* each of `rows` rows: out = w * (x / sqrt(mean(x^2) + eps)) */
void rms_norm(float *out, const float *x, const float *w, int n, float eps, int rows) {
    for (int r = 0; r < rows; r++) norm_into(out + (long)r * n, x + (long)r * n, w, n, eps);
}

/* x += y (the residual), then out = rms_norm(x) * w; `rows` rows of n */
void add_rms_norm(float *x, const float *y, float *out, const float *w, int n, float eps,
                  int rows) {
    const long size = (long)rows * n;
#pragma omp simd
    for (long i = 0; i < size; i++) x[i] += y[i];
    rms_norm(out, x, w, n, eps, rows);
}

/* each of `rows` rows: gu = [gate (n) | up (n)]; out = silu(gate) * up */
void silu_mul(float *out, const float *gu, int n, int rows) {
    for (int r = 0; r < rows; r++) {
        const float *gate = gu + 2L * r * n, *up = gate + n;
        float *o = out + (long)r * n;
        for (int i = 0; i < n; i++) o[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
}

/* What one layer's attention block needs besides the vectors of this step. */
typedef struct {
    const float *qk_norm_weight; /* [(heads + kv_heads) * head_dim]: q heads', then k heads' */
    float *k_cache;              /* [kv_heads][capacity][head_dim] of this layer */
    float *v_cache;
    float *scratch;              /* >= capacity floats */
    int heads, kv_heads, head_dim, capacity;
    float eps, scale;
} Attention;

/* One token at position `pos`: q/k normed per head, rotated (x*cos + swap_halves(x)*sin_signed),
 * k and v stored at `pos`, then softmax(q.K^T * scale).V over positions 0..pos for every q head
 * (grouped-query: q head h reads kv head h / (heads / kv_heads)).  qkv = [q | k | v] of this
 * token; cos and sin_signed are the rope rows of `pos`; out = [heads * head_dim]. */
static void attend_one(const Attention *a, const float *qkv, const float *cos,
                       const float *sin_signed, int pos, float *out) {
    const int d = a->head_dim, half = d / 2, group = a->heads / a->kv_heads;
    const float *v_in = qkv + (a->heads + a->kv_heads) * d;
    float normed[d], q[d];
    for (int g = 0; g < a->kv_heads; g++) {
        float *k = a->k_cache + ((long)g * a->capacity + pos) * d;
        const float *w = a->qk_norm_weight + (a->heads + g) * d;
        norm_into(normed, qkv + (a->heads + g) * d, w, d, a->eps);
        for (int i = 0; i < d; i++)
            k[i] = normed[i] * cos[i] + normed[(i + half) % d] * sin_signed[i];
        float *v = a->v_cache + ((long)g * a->capacity + pos) * d;
        for (int i = 0; i < d; i++) v[i] = v_in[g * d + i];
    }
    for (int h = 0; h < a->heads; h++) {
        const int g = h / group;
        const float *keys = a->k_cache + (long)g * a->capacity * d;
        const float *values = a->v_cache + (long)g * a->capacity * d;
        norm_into(normed, qkv + h * d, a->qk_norm_weight + h * d, d, a->eps);
        for (int i = 0; i < d; i++)
            q[i] = normed[i] * cos[i] + normed[(i + half) % d] * sin_signed[i];
        float *p = a->scratch, top = -INFINITY, total = 0.0f;
        for (int t = 0; t <= pos; t++) {
            p[t] = dot(q, keys + (long)t * d, d) * a->scale;
            if (p[t] > top) top = p[t];
        }
        for (int t = 0; t <= pos; t++) {
            p[t] = expf(p[t] - top);
            total += p[t];
        }
        float *o = out + h * d;
        for (int i = 0; i < d; i++) o[i] = 0.0f;
        for (int t = 0; t <= pos; t++) {
            const float weight = p[t] / total;
            const float *v = values + (long)t * d;
#pragma omp simd
            for (int i = 0; i < d; i++) o[i] += weight * v[i];
        }
    }
}

/* `tokens` consecutive tokens from position `pos`, causally: each one is stored before it
 * attends, and sees only the positions up to its own.  cos and sin_signed are the rope
 * tables ([capacity][head_dim]); qkv and out hold one row per token. */
void attend(const Attention *a, const float *qkv, const float *cos, const float *sin_signed,
            int pos, int tokens, float *out) {
    const int d = a->head_dim, width = (a->heads + 2 * a->kv_heads) * d;
    for (int j = 0; j < tokens; j++)
        attend_one(a, qkv + (long)j * width, cos + (long)(pos + j) * d,
                   sin_signed + (long)(pos + j) * d, pos + j, out + (long)j * a->heads * d);
}
