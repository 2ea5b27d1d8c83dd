/* Matrix products with int8 weights and int8 activations quantized per block of 32 inputs
 * (the ggml Q8_0 way), for the decode loop's single-token steps (see quantize.py, scheme
 * int8-dyn32, which calls `dyn32_linear` through ctypes; kernels.py compiles this file with
 * kernels.c).
 *
 * y[m, n] = wscale[n] * sum_b xs[m, b] * sum_{i in block b} w[n, i] * xq[m, i]  (+ bias[n])
 *
 * Weights: int8, row-major [n, k], one float scale per output row (symmetric, max |w| = 127).
 * Activations: each block of 32 inputs of each token gets its own scale (max |x| / 127) and
 * is rounded to int8 here, once per call.  A huge activation channel only costs its own block
 * of 32 its precision, where a scale per token (fbgemm) costs every channel.
 *
 * The dot products of a block are exact in int32; blocks are summed in float32.  The rows
 * are shared out among `threads` OpenMP threads (the caller passes torch's count: with
 * libgomp loaded once per process, the same team as torch's own products).  Vector paths: AVX-512 VNNI,
 * AVX-VNNI, AVX2, NEON with and without dotprod; plain C (vectorised by the compiler)
 * elsewhere.  Every path computes the same int32 block sums, so they agree to float32
 * rounding of the block accumulation.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#define BLOCK 32
#define MAX_K 16384 /* longest row (inputs) dyn32_linear takes */

/* 1 when compiled with OpenMP (the rows are shared out among threads), else 0 */
int dyn32_threaded(void) {
#ifdef _OPENMP
  return 1;
#else
  return 0;
#endif
}

/* which vector path this build runs (for the log and the tests) */
const char *dyn32_path(void) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  return "avx512-vnni";
#elif defined(__AVXVNNI__)
  return "avx-vnni";
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)
  return "neon-dotprod";
#elif defined(__ARM_NEON)
  return "neon";
#else
  return "c";
#endif
}

/* x [k] -> xq [k] int8 and xs [k / 32] (x = xq * xs, per block) */
static void quantize_blocks(const float *x, int k, int8_t *xq, float *xs) {
  for (int b = 0; b < k / BLOCK; b++) {
    const float *v = x + b * BLOCK;
    float amax = 0.f;
#pragma omp simd reduction(max : amax)
    for (int i = 0; i < BLOCK; i++) amax = fmaxf(amax, fabsf(v[i]));
    float scale = amax / 127.f, inv = amax > 0.f ? 127.f / amax : 0.f;
    xs[b] = scale;
#pragma omp simd
    for (int i = 0; i < BLOCK; i++) xq[b * BLOCK + i] = (int8_t)(int)rintf(v[i] * inv);
  }
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
/* u8 x s8 products: |w| and x with w's sign, so that the unsigned operand is w's magnitude */
static inline __m256i dot_block(__m256i w, __m256i x) {
  __m256i sx = _mm256_sign_epi8(x, w);
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), sx);
}
#elif defined(__AVXVNNI__)
static inline __m256i dot_block(__m256i w, __m256i x) {
  __m256i sx = _mm256_sign_epi8(x, w);
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), sx);
}
#elif defined(__AVX2__)
static inline __m256i dot_block(__m256i w, __m256i x) {
  /* |w| * x in int16 pairs cannot saturate: 2 * 127 * 127 < 32767 */
  __m256i sx = _mm256_sign_epi8(x, w);
  __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), sx);
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}
#endif

#if defined(__AVX2__)
static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

/* sum_b xs[b] * (w[b] . xq[b]) over the k / 32 blocks of one row */
static float row_dot(const int8_t *w, const int8_t *xq, const float *xs, int k) {
  int blocks = k / BLOCK;
#if defined(__AVX2__)
  __m256 acc = _mm256_setzero_ps();
  int b = 0;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  /* two blocks a step in 512-bit registers (the 16 sums: 8 of each block) */
  __m512 wide = _mm512_setzero_ps();
  for (; b + 1 < blocks; b += 2) {
    __m512i wv = _mm512_loadu_si512(w + b * BLOCK), xv = _mm512_loadu_si512(xq + b * BLOCK);
    __m512i sx = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(wv), _mm512_setzero_si512(), xv);
    __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wv), sx);
    __m512 scale = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_broadcast_ss(xs + b)),
                                      _mm256_broadcast_ss(xs + b + 1), 1);
    wide = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), scale, wide);
  }
  acc = _mm256_add_ps(_mm512_castps512_ps256(wide), _mm512_extractf32x8_ps(wide, 1));
#endif
  for (; b < blocks; b++) {
    __m256i wv = _mm256_loadu_si256((const __m256i *)(w + b * BLOCK));
    __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + b * BLOCK));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_block(wv, xv)), _mm256_set1_ps(xs[b]), acc);
  }
  return hsum(acc);
#elif defined(__ARM_NEON)
/* block b's 4 integer sums w[b] . xq[b] */
#if defined(__ARM_FEATURE_DOTPROD)
#define I8_BLOCK_SUMS(b, d)                                                              \
  int32x4_t d;                                                                           \
  {                                                                                      \
    const int8_t *wb_ = w + (b) * BLOCK, *xb_ = xq + (b) * BLOCK;                        \
    d = vdotq_s32(vdotq_s32(vdupq_n_s32(0), vld1q_s8(wb_), vld1q_s8(xb_)),               \
                  vld1q_s8(wb_ + 16), vld1q_s8(xb_ + 16));                               \
  }
#else /* |sum| <= 4 * 127 * 127 in int16 */
#define I8_BLOCK_SUMS(b, d)                                                              \
  int32x4_t d;                                                                           \
  {                                                                                      \
    const int8_t *wb_ = w + (b) * BLOCK, *xb_ = xq + (b) * BLOCK;                        \
    int8x16_t w0_ = vld1q_s8(wb_), w1_ = vld1q_s8(wb_ + 16);                             \
    int8x16_t x0_ = vld1q_s8(xb_), x1_ = vld1q_s8(xb_ + 16);                             \
    int16x8_t p_ = vmull_s8(vget_low_s8(w0_), vget_low_s8(x0_));                         \
    p_ = vmlal_s8(p_, vget_high_s8(w0_), vget_high_s8(x0_));                             \
    int16x8_t q_ = vmull_s8(vget_low_s8(w1_), vget_low_s8(x1_));                         \
    q_ = vmlal_s8(q_, vget_high_s8(w1_), vget_high_s8(x1_));                             \
    d = vpadalq_s16(vpaddlq_s16(p_), q_);                                                \
  }
#endif
  float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = acc0;
  int b = 0;
  /* four blocks a step: their four scales in one register, one lane each */
  for (; b + 4 <= blocks; b += 4) {
    float32x4_t scale = vld1q_f32(xs + b);
    I8_BLOCK_SUMS(b, d0)
    I8_BLOCK_SUMS(b + 1, d1)
    I8_BLOCK_SUMS(b + 2, d2)
    I8_BLOCK_SUMS(b + 3, d3)
    acc0 = vfmaq_laneq_f32(acc0, vcvtq_f32_s32(d0), scale, 0);
    acc1 = vfmaq_laneq_f32(acc1, vcvtq_f32_s32(d1), scale, 1);
    acc0 = vfmaq_laneq_f32(acc0, vcvtq_f32_s32(d2), scale, 2);
    acc1 = vfmaq_laneq_f32(acc1, vcvtq_f32_s32(d3), scale, 3);
  }
  for (; b < blocks; b++) {
    I8_BLOCK_SUMS(b, d)
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(d), xs[b]);
  }
#undef I8_BLOCK_SUMS
  return vaddvq_f32(vaddq_f32(acc0, acc1));
#else
  float acc = 0.f;
  for (int b = 0; b < blocks; b++) {
    int32_t d = 0;
#pragma omp simd reduction(+ : d)
    for (int i = 0; i < BLOCK; i++) d += (int32_t)w[b * BLOCK + i] * xq[b * BLOCK + i];
    acc += (float)d * xs[b];
  }
  return acc;
#endif
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__) || \
    defined(__AVXVNNI__)
#define UNSIGNED_TILE 1
#if defined(__AVXVNNI__) && !defined(__AVX512VNNI__)
#define DPBUSD _mm256_dpbusd_avx_epi32
#else
#define DPBUSD _mm256_dpbusd_epi32
#endif
/* Four tokens at once against one row, with VNNI: the activations as unsigned bytes
 * (xu = xq + 128), so that each block is one vpdpbusd with no sign fix-up; the 128 * sum(w)
 * this adds per block is taken off once per token and row (the row's block sums, ws, are
 * shared by every token). */
static void row_dot4(const int8_t *w, const uint8_t *xu, const float *xs, const float *ws,
                     int k, float *out) {
  int blocks = k / BLOCK;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int b = 0; b < blocks; b++) {
    __m256i wv = _mm256_loadu_si256((const __m256i *)(w + b * BLOCK));
    const uint8_t *xb = xu + b * BLOCK;
    const float *sb = xs + b;
#define TOKEN(t, acc)                                                                   \
    acc = _mm256_fmadd_ps(                                                              \
        _mm256_cvtepi32_ps(DPBUSD(_mm256_setzero_si256(),                               \
                                  _mm256_loadu_si256((const __m256i *)(xb + (t) * k)), wv)), \
        _mm256_broadcast_ss(sb + (t) * blocks), acc)
    TOKEN(0, a0);
    TOKEN(1, a1);
    TOKEN(2, a2);
    TOKEN(3, a3);
#undef TOKEN
  }
  __m256 acc[4] = {a0, a1, a2, a3};
  for (int t = 0; t < 4; t++) {
    const float *st = xs + t * blocks;
    float corr = 0.f;
#pragma omp simd reduction(+ : corr)
    for (int b = 0; b < blocks; b++) corr += st[b] * ws[b];
    out[t] = hsum(acc[t]) - 128.f * corr;
  }
}

/* the row's sum per block of 32 weights */
static void block_sums(const int8_t *w, int k, float *ws) {
  const __m256i ones = _mm256_set1_epi8(1);
  for (int b = 0; b < k / BLOCK; b++) {
    __m256i d = DPBUSD(_mm256_setzero_si256(), ones,
                       _mm256_loadu_si256((const __m256i *)(w + b * BLOCK)));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    ws[b] = (float)_mm_cvtsi128_si32(s);
  }
}
#define TILE 4
#elif defined(__AVX2__)
/* four tokens at once against one row: the row's blocks are loaded once for all four */
static void row_dot4(const int8_t *w, const int8_t *xq, const float *xs, int k, float *out) {
  int blocks = k / BLOCK;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int b = 0; b < blocks; b++) {
    __m256i wv = _mm256_loadu_si256((const __m256i *)(w + b * BLOCK));
    const int8_t *xb = xq + b * BLOCK;
    const float *sb = xs + b;
#define TOKEN(t, acc)                                                                   \
    acc = _mm256_fmadd_ps(                                                              \
        _mm256_cvtepi32_ps(dot_block(wv, _mm256_loadu_si256((const __m256i *)(xb + (t) * k)))), \
        _mm256_broadcast_ss(sb + (t) * blocks), acc)
    TOKEN(0, a0);
    TOKEN(1, a1);
    TOKEN(2, a2);
    TOKEN(3, a3);
#undef TOKEN
  }
  out[0] = hsum(a0);
  out[1] = hsum(a1);
  out[2] = hsum(a2);
  out[3] = hsum(a3);
}
#define TILE 4
#else
#define TILE 1
#endif

/* y [m, n] = x [m, k] W^T for int8 W [n, k] with row scales; bias may be NULL.
 * k must be a multiple of 32 and at most MAX_K.  Returns 0, -1 if scratch memory could not
 * be had, -2 for a k it does not take. */
int dyn32_linear(float *y, const float *x, int m, int k, const int8_t *w,
                 const float *wscale, const float *bias, int n, int threads) {
  if (k % BLOCK || k > MAX_K) return -2;
  int blocks = k / BLOCK;
  int8_t stack_q[8192];
  float stack_s[8192 / BLOCK];
  int8_t *xq = stack_q;
  float *xs = stack_s;
  size_t need = (size_t)m * k;
  if (need > sizeof(stack_q)) {
    xq = malloc(need);
    xs = malloc(sizeof(float) * (size_t)m * blocks);
    if (!xq || !xs) {
      free(xq);
      free(xs);
      return -1;
    }
  }
  for (int t = 0; t < m; t++) quantize_blocks(x + (size_t)t * k, k, xq + (size_t)t * k,
                                              xs + (size_t)t * blocks);
#if TILE > 1
  int tiled = m - m % TILE;
#endif
#ifdef UNSIGNED_TILE
  /* the tiles' copy of the activations as unsigned bytes (the tokens past the last tile
   * keep the signed copy) */
  uint8_t *xu = NULL;
  if (tiled) {
    xu = malloc((size_t)tiled * k);
    if (!xu) {
      if (xq != stack_q) {
        free(xq);
        free(xs);
      }
      return -1;
    }
    for (size_t i = 0; i < (size_t)tiled * k; i++) xu[i] = (uint8_t)(xq[i] ^ 0x80);
  }
#endif
  /* a row of W stays in L1 while every token's dot product with it is taken */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n >= 64)
  for (int j = 0; j < n; j++) {
    const int8_t *row = w + (size_t)j * k;
    float b = bias ? bias[j] : 0.f, s = wscale[j];
    int t = 0;
#if TILE > 1
    float d[TILE];
#ifdef UNSIGNED_TILE
    float ws[MAX_K / BLOCK];
    if (tiled) block_sums(row, k, ws);
#endif
    for (; t < tiled; t += TILE) {
#ifdef UNSIGNED_TILE
      row_dot4(row, xu + (size_t)t * k, xs + (size_t)t * blocks, ws, k, d);
#else
      row_dot4(row, xq + (size_t)t * k, xs + (size_t)t * blocks, k, d);
#endif
      for (int u = 0; u < TILE; u++) y[(size_t)(t + u) * n + j] = d[u] * s + b;
    }
#endif
    for (; t < m; t++)
      y[(size_t)t * n + j] = row_dot(row, xq + (size_t)t * k, xs + (size_t)t * blocks, k) * s + b;
  }
#ifdef UNSIGNED_TILE
  free(xu);
#endif
  if (xq != stack_q) {
    free(xq);
    free(xs);
  }
  return 0;
}

/* ---- 4-bit weights (scheme int4-dyn32, the ggml Q4_0 way) --------------------------------
 *
 * y[m, n] = sum_b ws[n, b] * xs[m, b] * sum_{i in block b} (u[n, i] - 8) * xq[m, i]  (+ bias)
 *
 * Weights: per block of 32 inputs of a row, 16 bytes and a float16 scale; byte i of block b
 * holds u[32b + i] in its low nibble and u[32b + 16 + i] in its high one, u = w / ws + 8 in
 * [0, 15].  Activations: int8 per block of 32 as above.  0.5625 bytes per weight.
 *
 * The nibbles are multiplied as they are (0..15: vpdpbusd or vpmaddubsw take them unsigned
 * without a sign fix-up, NEON's signed products as int8); the 8 * sum(xq) this adds per block
 * is taken off in the integer sums, which start from -8 * sum(xq) (xo, once per call). */

static inline float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float f;
  if (exp == 0) {
    f = ldexpf((float)man, -24); /* zero and subnormals */
    return sign ? -f : f;
  }
  uint32_t bits = exp == 31 ? sign | 0x7f800000 | (man << 13)
                            : sign | ((exp + 112) << 23) | (man << 13);
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* The vector paths take Q4_GROUP blocks a step, one block per 128-bit lane: one load of the
 * group's 16 * Q4_GROUP bytes gives the low nibbles of all its blocks and, shifted by 4, their
 * high nibbles.  So the activations of each whole group are stored once per call as its
 * blocks' first 16 values, then their last 16 (group order; with one block a group, the
 * natural order).  Blocks past the last whole group keep their natural order and take the
 * plain loop. */
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define Q4_GROUP 4
#elif defined(__AVX2__)
#define Q4_GROUP 2
#else
#define Q4_GROUP 1
#endif
#define Q4_LANES 4 /* int32 sums per block (a 128-bit lane): -8 * sum(xq[b]) in the first */

static void group_order(int8_t *xq, int blocks) {
#if Q4_GROUP > 1
  int8_t tmp[Q4_GROUP * BLOCK];
  for (int b = 0; b + Q4_GROUP <= blocks; b += Q4_GROUP) {
    int8_t *p = xq + b * BLOCK;
    for (int i = 0; i < Q4_GROUP; i++) {
      memcpy(tmp + 16 * i, p + BLOCK * i, 16);
      memcpy(tmp + 16 * (Q4_GROUP + i), p + BLOCK * i + 16, 16);
    }
    memcpy(p, tmp, sizeof tmp);
  }
#else
  (void)xq;
  (void)blocks;
#endif
}

/* one block's sum of (u - 8) * xq, activations in natural order */
static inline int32_t q4_block_plain(const uint8_t *wb, const int8_t *xb) {
  int32_t d = 0;
#pragma omp simd reduction(+ : d)
  for (int i = 0; i < 16; i++)
    d += ((int32_t)(wb[i] & 0x0f) - 8) * xb[i] + ((int32_t)(wb[i] >> 4) - 8) * xb[i + 16];
  return d;
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define UDOT256(acc, u, x) _mm256_dpbusd_epi32(acc, u, x)
#elif defined(__AVXVNNI__)
#define UDOT256(acc, u, x) _mm256_dpbusd_avx_epi32(acc, u, x)
#endif

/* the x86 paths convert the float16 scales as they go; the others get them as float32 (ws) */
#if defined(__AVX2__) && defined(__F16C__)
#define Q4_SCALE(b) (half_to_float(ws16[b]) * xs[b])
#else
#define Q4_ROW_SCALES 1
#define Q4_SCALE(b) (ws[b] * xs[b])
#endif

#ifdef Q4_ROW_SCALES
/* a row's float16 block scales as float32 */
static void row_scales(const uint16_t *ws16, int blocks, float *ws) {
  int b = 0;
#if defined(__ARM_NEON)
  for (; b + 4 <= blocks; b += 4)
    vst1q_f32(ws + b, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(ws16 + b))));
#endif
  for (; b < blocks; b++) ws[b] = half_to_float(ws16[b]);
}
#endif

/* sum_b ws[b] * xs[b] * w[b] . xq[b] for one row and one token.  The vector paths start each
 * block's integer sums from xo (Q4_LANES int32 per block), so that the nibbles' offset of 8
 * comes off exactly. */
static float q4_row_dot(const uint8_t *w, const uint16_t *ws16, const float *ws,
                        const int8_t *xq, const float *xs, const int32_t *xo, int k) {
  int blocks = k / BLOCK, grouped = blocks - blocks % Q4_GROUP, b = 0;
  float tail = 0.f;
#ifdef Q4_ROW_SCALES
  (void)ws16;
#else
  (void)ws;
#endif
/* the groups of one chunk of 4 * Q4_GROUP blocks (b0 to end), two a step into the two
 * accumulators; idx picks each group's block scales out of the chunk's `scale` */
#define Q4_CHUNK_GROUPS(itype, add)                                                      \
  do {                                                                                   \
    itype idx = first;                                                                   \
    for (b = b0; b + 2 * Q4_GROUP <= end; b += 2 * Q4_GROUP) {                           \
      Q4_GROUP_STEP(b, idx, acc0);                                                       \
      itype idx1 = add(idx, next);                                                       \
      Q4_GROUP_STEP(b + Q4_GROUP, idx1, acc1);                                           \
      idx = add(idx1, next);                                                             \
    }                                                                                    \
    if (b < end) Q4_GROUP_STEP(b, idx, acc0);                                            \
  } while (0)
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  const __m512i low = _mm512_set1_epi8(0x0f), next = _mm512_set1_epi32(4);
  /* lanes 4i to 4i + 3 hold block i's sums */
  const __m512i first = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
#define Q4_GROUP_STEP(b, idx, acc)                                                       \
  do {                                                                                   \
    __m512i v_ = _mm512_loadu_si512(w + (b) * 16);                                       \
    __m512i d_ = _mm512_dpbusd_epi32(_mm512_loadu_si512(xo + (b) * Q4_LANES),            \
                                     _mm512_and_si512(v_, low),                          \
                                     _mm512_loadu_si512(xq + (b) * BLOCK));              \
    d_ = _mm512_dpbusd_epi32(d_, _mm512_and_si512(_mm512_srli_epi16(v_, 4), low),         \
                             _mm512_loadu_si512(xq + (b) * BLOCK + 64));                 \
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d_), _mm512_permutexvar_ps(idx, scale), acc); \
  } while (0)
  for (int b0 = 0; b0 < grouped; b0 += 16) {
    int end = grouped - b0 < 16 ? grouped : b0 + 16;
    __mmask16 mk = (__mmask16)((1u << (end - b0)) - 1);
    /* the next 16 blocks' ws * xs, picked per lane */
    __m512 scale = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, ws16 + b0)),
                                 _mm512_maskz_loadu_ps(mk, xs + b0));
    Q4_CHUNK_GROUPS(__m512i, _mm512_add_epi32);
  }
#undef Q4_GROUP_STEP
  b = grouped;
  __m512 sum = _mm512_add_ps(acc0, acc1);
  float vec = hsum(_mm256_add_ps(_mm512_castps512_ps256(sum), _mm512_extractf32x8_ps(sum, 1)));
#elif defined(__AVX2__)
  const __m256i low = _mm256_set1_epi8(0x0f), next = _mm256_set1_epi32(2);
  const __m256i first = _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0);
#ifndef UDOT256
  const __m256i ones = _mm256_set1_epi16(1);
#endif
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  /* (u0 x0 + u1 x1) + (u2 x2 + u3 x3) in int16 cannot saturate: 4 * 15 * 127 < 32767 */
#ifdef UDOT256
#define Q4_SUMS(lo, hi, x, o) UDOT256(UDOT256(o, lo, _mm256_loadu_si256(x)), hi, \
                                      _mm256_loadu_si256((x) + 1))
#else
#define Q4_SUMS(lo, hi, x, o)                                                            \
  _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(                                   \
                       _mm256_maddubs_epi16(lo, _mm256_loadu_si256(x)),                  \
                       _mm256_maddubs_epi16(hi, _mm256_loadu_si256((x) + 1))), ones), o)
#endif
#define Q4_GROUP_STEP(b, idx, acc)                                                       \
  do {                                                                                   \
    __m256i v_ = _mm256_loadu_si256((const __m256i *)(w + (b) * 16));                    \
    __m256i d_ = Q4_SUMS(_mm256_and_si256(v_, low),                                      \
                         _mm256_and_si256(_mm256_srli_epi16(v_, 4), low),                \
                         (const __m256i *)(xq + (b) * BLOCK),                            \
                         _mm256_loadu_si256((const __m256i *)(xo + (b) * Q4_LANES)));    \
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d_), _mm256_permutevar8x32_ps(scale, idx), acc); \
  } while (0)
  for (int b0 = 0; b0 < grouped; b0 += 8) {
    int end = grouped - b0 < 8 ? grouped : b0 + 8;
    __m256 scale; /* the next 8 blocks' ws * xs, picked per lane */
    if (end - b0 == 8) {
      scale = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ws16 + b0))),
                            _mm256_loadu_ps(xs + b0));
    } else {
      float part[8] = {0.f};
      for (int i = 0; i < end - b0; i++) part[i] = Q4_SCALE(b0 + i);
      scale = _mm256_loadu_ps(part);
    }
    Q4_CHUNK_GROUPS(__m256i, _mm256_add_epi32);
  }
#undef Q4_GROUP_STEP
#undef Q4_SUMS
  b = grouped;
  float vec = hsum(_mm256_add_ps(acc0, acc1));
#elif defined(__ARM_NEON)
  const uint8x16_t low = vdupq_n_u8(0x0f);
  float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = acc0;
/* block b's integer sums: the nibbles (0..15) as int8 times the activations, from xo */
#if defined(__ARM_FEATURE_DOTPROD)
#define Q4_BLOCK_SUMS(b, d)                                                              \
  int32x4_t d;                                                                           \
  {                                                                                      \
    uint8x16_t v_ = vld1q_u8(w + (b) * 16);                                              \
    const int8_t *xb_ = xq + (b) * BLOCK;                                                \
    d = vdotq_s32(vdotq_s32(vld1q_s32(xo + (b) * Q4_LANES),                              \
                            vreinterpretq_s8_u8(vandq_u8(v_, low)), vld1q_s8(xb_)),      \
                  vreinterpretq_s8_u8(vshrq_n_u8(v_, 4)), vld1q_s8(xb_ + 16));           \
  }
#else /* |sum| <= 4 * 15 * 127 in int16 */
#define Q4_BLOCK_SUMS(b, d)                                                              \
  int32x4_t d;                                                                           \
  {                                                                                      \
    uint8x16_t v_ = vld1q_u8(w + (b) * 16);                                              \
    int8x16_t w0_ = vreinterpretq_s8_u8(vandq_u8(v_, low));                              \
    int8x16_t w1_ = vreinterpretq_s8_u8(vshrq_n_u8(v_, 4));                              \
    const int8_t *xb_ = xq + (b) * BLOCK;                                                \
    int8x16_t x0_ = vld1q_s8(xb_), x1_ = vld1q_s8(xb_ + 16);                             \
    int16x8_t p_ = vmull_s8(vget_low_s8(w0_), vget_low_s8(x0_));                         \
    p_ = vmlal_s8(p_, vget_high_s8(w0_), vget_high_s8(x0_));                             \
    p_ = vmlal_s8(p_, vget_low_s8(w1_), vget_low_s8(x1_));                               \
    p_ = vmlal_s8(p_, vget_high_s8(w1_), vget_high_s8(x1_));                             \
    d = vpadalq_s16(vld1q_s32(xo + (b) * Q4_LANES), p_);                                 \
  }
#endif
  /* four blocks a step: their four ws * xs in one register, one lane each */
  for (; b + 4 <= blocks; b += 4) {
    float32x4_t prod = vmulq_f32(vld1q_f32(ws + b), vld1q_f32(xs + b));
    Q4_BLOCK_SUMS(b, d0)
    Q4_BLOCK_SUMS(b + 1, d1)
    Q4_BLOCK_SUMS(b + 2, d2)
    Q4_BLOCK_SUMS(b + 3, d3)
    acc0 = vfmaq_laneq_f32(acc0, vcvtq_f32_s32(d0), prod, 0);
    acc1 = vfmaq_laneq_f32(acc1, vcvtq_f32_s32(d1), prod, 1);
    acc0 = vfmaq_laneq_f32(acc0, vcvtq_f32_s32(d2), prod, 2);
    acc1 = vfmaq_laneq_f32(acc1, vcvtq_f32_s32(d3), prod, 3);
  }
  for (; b < blocks; b++) {
    Q4_BLOCK_SUMS(b, d)
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(d), ws[b] * xs[b]);
  }
#undef Q4_BLOCK_SUMS
  float vec = vaddvq_f32(vaddq_f32(acc0, acc1));
#else
  (void)xo;
  (void)grouped;
  float vec = 0.f;
#endif
  for (; b < blocks; b++) tail += (float)q4_block_plain(w + b * 16, xq + b * BLOCK) * Q4_SCALE(b);
  return vec + tail;
}
#undef Q4_CHUNK_GROUPS
#undef Q4_SCALE

/* y [m, n] = x [m, k] W^T for 4-bit W (packed [n, k / 2] as above, float16 scales
 * [n, k / 32]); bias may be NULL.  Returns as dyn32_linear does. */
int q4_linear(float *y, const float *x, int m, int k, const uint8_t *w, const uint16_t *wscale,
              const float *bias, int n, int threads) {
  if (k % BLOCK || k > MAX_K) return -2;
  int blocks = k / BLOCK;
  /* per token: xq [k], xo [blocks * Q4_LANES], xs [blocks] */
  size_t per_token = (size_t)k + (sizeof(int32_t) * Q4_LANES + sizeof(float)) * blocks;
  size_t need = per_token * (size_t)(m > 0 ? m : 1);
  _Alignas(64) char stack[16384];
  char *scratch = need <= sizeof stack ? stack : malloc(need);
  if (!scratch) return -1;
  int8_t *xq = (int8_t *)scratch;
  int32_t *xo = (int32_t *)(scratch + (size_t)m * k); /* k is a multiple of 32 */
  float *xs = (float *)(xo + (size_t)m * blocks * Q4_LANES);
  memset(xo, 0, sizeof(int32_t) * Q4_LANES * (size_t)m * blocks);
  for (int t = 0; t < m; t++) {
    int8_t *q = xq + (size_t)t * k;
    int32_t *o = xo + (size_t)t * blocks * Q4_LANES;
    quantize_blocks(x + (size_t)t * k, k, q, xs + (size_t)t * blocks);
    for (int b = 0; b < blocks; b++) {
      int32_t sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int i = 0; i < BLOCK; i++) sum += q[b * BLOCK + i];
      o[(size_t)b * Q4_LANES] = -8 * sum;
    }
    group_order(q, blocks);
  }
  /* a row of W stays in L1 while every token's dot product with it is taken */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n >= 64)
  for (int j = 0; j < n; j++) {
    const uint16_t *ws16 = wscale + (size_t)j * blocks;
    float ws[MAX_K / BLOCK];
#ifdef Q4_ROW_SCALES
    row_scales(ws16, blocks, ws);
#endif
    const uint8_t *row = w + (size_t)j * (k / 2);
    float b = bias ? bias[j] : 0.f;
    for (int t = 0; t < m; t++)
      y[(size_t)t * n + j] = q4_row_dot(row, ws16, ws, xq + (size_t)t * k,
                                        xs + (size_t)t * blocks,
                                        xo + (size_t)t * blocks * Q4_LANES, k) + b;
  }
  if (scratch != stack) free(scratch);
  return 0;
}
