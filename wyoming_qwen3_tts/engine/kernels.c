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
#include <stdint.h>
#include <string.h>

/* e^x in float32 for `#pragma omp simd` loops, where libm's expf (a call per element) keeps
 * the loop scalar.  Cephes expf: x = k ln2 + r, |r| <= ln2/2 (Cody-Waite: ln2 in two parts,
 * k ln2_hi exact), e^r = 1 + r + r^2 P(r) with P of degree 5, times 2^k made from bits.
 * At most 1.01 ulp from float64 exp over [-87, 88], with or without FMA contraction.
 * As expf: inf from ln(FLT_MAX) = 88.7228 up, subnormal below ln(FLT_MIN) = -87.3365, 0 below
 * -104; unlike it, NaN gives inf (+NaN) or 0 (-NaN).
 * x is clamped to [-104, 89] by integer min on its bits (floats of one sign order as their
 * bits do), not by float compares: gcc turns those into branches and threads the clamped
 * path into constants, whose overflow to inf may trap (-ftrapping-math), and then vectorises
 * the loop only with masked vector operations (AVX-512), not on AVX2, SSE2 or NEON.
 * 2^k is 2^(k/2) 2^(k - k/2) (k in [-150, 128], each factor a normal float), so that inf and
 * subnormals come out of the rounding of the last product. */
static inline float exp_simd(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = u > 0xC2D00000u ? 0xC2D00000u : u; /* -104.0f: x < -104 (larger, sign bit set) */
    int32_t b = (int32_t)u;
    b = b > 0x42B20000 ? 0x42B20000 : b;   /* 89.0f: x > 89, +inf, +NaN */
    float c;
    memcpy(&c, &b, sizeof c);
    const float shifter = 12582912.0f;     /* 1.5 * 2^23: adding it rounds to an integer */
    float k = c * 1.44269504088896341f + shifter;
    k -= shifter;
    float r = c - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const int32_t n = (int32_t)k, half = n >> 1;
    const uint32_t e1 = (uint32_t)(half + 127) << 23, e2 = (uint32_t)(n - half + 127) << 23;
    float s1, s2;
    memcpy(&s1, &e1, sizeof s1);
    memcpy(&s2, &e2, sizeof s2);
    return p * s1 * s2;
}

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
#pragma omp simd
        for (int i = 0; i < n; i++) o[i] = gate[i] / (1.0f + exp_simd(-gate[i])) * up[i];
    }
}

/* What one layer's attention block needs besides the vectors of this step. */
typedef struct {
    const float *qk_norm_weight; /* [(heads + kv_heads) * head_dim]: q heads', then k heads' */
    float *k_cache;              /* [kv_heads][capacity][head_dim] of this layer */
    float *v_cache;
    float *scratch;              /* [heads / kv_heads][capacity] */
    int heads, kv_heads, head_dim, capacity;
    float eps, scale;
} Attention;

/* q or k of one head: normed (x / rms * w), then rotated (x*cos + swap_halves(x)*sin_signed) */
static void norm_rope(float *out, const float *x, const float *w, const float *cos,
                      const float *sin_signed, int d, float eps) {
    const int half = d / 2;
    float normed[d];
    norm_into(normed, x, w, d, eps);
    for (int i = 0; i < half; i++) {
        out[i] = normed[i] * cos[i] + normed[i + half] * sin_signed[i];
        out[i + half] = normed[i + half] * cos[i + half] + normed[i] * sin_signed[i + half];
    }
}

/* One token at position `pos`: k and v stored at `pos`, then softmax(q.K^T * scale).V over
 * positions 0..pos for every q head (grouped-query: q head h reads kv head h / group).
 * qkv = [q | k | v] of this token; cos and sin_signed are the rope rows of `pos`;
 * out = [heads * head_dim].  The q heads of a group are done together, so that each cached
 * key and value is read once. */
static void attend_one(const Attention *a, const float *qkv, const float *cos,
                       const float *sin_signed, int pos, float *out) {
    const int d = a->head_dim, group = a->heads / a->kv_heads, n = pos + 1;
    const float *v_in = qkv + (a->heads + a->kv_heads) * d;
    float q[group][d];
    for (int g = 0; g < a->kv_heads; g++) {
        float *keys = a->k_cache + (long)g * a->capacity * d;
        float *values = a->v_cache + (long)g * a->capacity * d;
        norm_rope(keys + (long)pos * d, qkv + (a->heads + g) * d,
                  a->qk_norm_weight + (a->heads + g) * d, cos, sin_signed, d, a->eps);
        for (int i = 0; i < d; i++) values[(long)pos * d + i] = v_in[g * d + i];
        for (int j = 0; j < group; j++) {
            const int h = g * group + j;
            norm_rope(q[j], qkv + h * d, a->qk_norm_weight + h * d, cos, sin_signed, d,
                      a->eps);
        }
        for (int t = 0; t < n; t++) {  /* scores p[j][t] = q_j . k_t * scale */
            const float *key = keys + (long)t * d;
            for (int j = 0; j < group; j++)
                a->scratch[(long)j * a->capacity + t] = dot(q[j], key, d) * a->scale;
        }
        for (int j = 0; j < group; j++) {  /* softmax over t */
            float *p = a->scratch + (long)j * a->capacity, top = -INFINITY, total = 0.0f;
            for (int t = 0; t < n; t++) top = p[t] > top ? p[t] : top;
#pragma omp simd
            for (int t = 0; t < n; t++) p[t] = exp_simd(p[t] - top);
            for (int t = 0; t < n; t++) total += p[t];  /* in order, as before */
            for (int t = 0; t < n; t++) p[t] /= total;
            float *o = out + (g * group + j) * d;
            for (int i = 0; i < d; i++) o[i] = 0.0f;
        }
        for (int t = 0; t < n; t++) {  /* out_j = sum_t p[j][t] v_t */
            const float *value = values + (long)t * d;
            for (int j = 0; j < group; j++) {
                const float weight = a->scratch[(long)j * a->capacity + t];
                float *o = out + (g * group + j) * d;
#pragma omp simd
                for (int i = 0; i < d; i++) o[i] += weight * value[i];
            }
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
