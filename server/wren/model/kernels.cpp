// CPU matmuls for the lean decoder (wren/model/fast_decode.py): 4-bit and 8-bit weights with
// int8 activations, AVX2. Built by `python -m wren.model.kernels` (scripts/setup.sh) and loaded
// with torch.ops.load_library; without it the decoder uses torch's own int4/int8 kernels.
//
// Why: torch's CPU int4 kernel (_weight_int4pack_mm_for_cpu) converts every weight to bf16
// and reaches ~6 GB/s on an AVX2 core; one decode step of the default model reads ~95 MB of
// weights, so decode speed is bounded by that kernel. Here each block of 32 activations is
// quantized to int8 once per call, and a weight block is multiplied with
// _mm256_maddubs_epi16 (32 multiply-adds in one instruction) with the block scales applied
// afterwards in float -- the scheme GGUF runtimes use for Q4_1 x Q8 dot products.
//
// Exactness: every (input row, output row) dot product is computed by the same instruction
// sequence whatever the number of input rows, the tiling or the number of threads, so a
// position's result does not depend on what it was batched with (KV reuse and draft
// verification stay bit-exact; tests/unit/test_kernels.py checks it). Compile with
// -ffp-contract=off so the compiler cannot fuse differently in different call sites.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/custom_class.h>
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

namespace {

constexpr int64_t QK = 32;    // block of inputs sharing one scale (weights and activations)
constexpr int64_t TILE = 16;  // output rows per parallel task
// Prefill chunks: 8 input rows against 2 output rows at a time share each weight unpack. With
// one pointer for the inputs and one for the scales (2026-11-29), a layer's four matmuls over
// 64 rows ran at 91 GMAC/s as 8 x 2; 6 x 2: 88, 12 x 2: 86, 4 x 4: 70, 8 x 3: 63 (before that
// change, 2 x 4 etc. reached 76 at best). A 1,024-token prefill went ~490 -> ~600 tokens/s.
// Draft verification and a keystroke's few new prompt tokens (2-7 rows): groups of 4, then 3
// or 2 rows, against 2 output rows (pairs and single rows before: a 5-row pass over 1,000
// cached tokens 20.8 -> 17.8 ms, 3 rows 13.3 -> 12.0 ms; 2026-11-28).
constexpr int PREFILL_ROWS = 8;
constexpr int PREFILL_OUT = 2;
// The 4-bit weights' block scales and minimums are stored for 8 output rows together ([n/8,
// k/32, 8], rows padded to a multiple of 8), so one vector holds a block's scales for 8 rows:
// q4_setup works 8 output rows a vector, without a row-by-row layout's horizontal sums and
// scalar tails for every (input row, output row) pair.
// A layer's four matmuls, hot (scripts/bench/kernels.py, alternating builds, 2026-11-29): 1 row
// 0.074 -> 0.069-0.072 ms, 2 rows 0.109 -> 0.098-0.099, 4 rows 0.187-0.192 -> 0.158-0.166,
// 8 rows 0.337-0.342 -> 0.308-0.317, 64 rows 89-91 -> 97-101 GMAC/s.
constexpr int64_t SCALE_ROWS = 8;

// A decode step streams ~90 MB of weights from memory with little work per byte. Before the
// rows of a microkernel call are multiplied, all their cache lines are requested at once, so
// the loads are in flight together instead of one block after another. Measured in full decode
// steps over 1,000 cached tokens (half keys/values), 2 threads, alternating builds
// (2026-11-28): 8-bit head 1.24-1.37 ms, 4-bit layers 3.6-3.9 ms, step 6.8-7.5 ms; asking 4 rows
// ahead instead: 1.8-1.9, 4.1-4.3, 8.3-8.7 ms; 256 (head) and 16 (layers) rows ahead, as
// before: 1.7-1.95, 4.2-4.8, 8.0-9.0 ms; no prefetching at all: 1.8-2.5, 4.9-7.0, 8.8-11.8 ms.
template <decltype(_MM_HINT_T0) HINT = _MM_HINT_T0>  // into L1, or _MM_HINT_T1: into L2
inline void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(c + o, HINT);
}

// The 8-bit head is one long stream (~28 MB, half per thread), unlike a layer's short matmuls:
// besides the rows about to be multiplied, the rows this far ahead are asked into L2. Measured
// alone on 2 threads (the head cold, 4 copies in turn; 2026-11-29): 1.31-1.41 -> 0.82-1.00 ms;
// 16 to 128 rows (of 576 bytes) ahead were alike. The same for the 4-bit layers (32 or 64 rows
// ahead, or the next matmul's first rows asked for at the end of each one) changed nothing.
constexpr int64_t HEAD_PREFETCH_BYTES = 32 * 1024;

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline float hmax(__m256 v) {
  __m128 lo = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_max_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// e^x (softmax scores minus their maximum; silu's e^-gate): 2^n * e^r with |r| <= ln2/2 and a
// degree-6 polynomial for e^r (relative error ~1e-7); x is clamped to [-87, 88], inside float.
inline __m256 exp_clamped(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.f)), _mm256_set1_ps(88.f));
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(n));
}

// Each 32-block of one row of x (block b written at dst + b * block_stride): its values rounded to T (to nearest, ties to even, as
// std::nearbyint), their scale, and the float sum of the block (the Q4_1 zero point multiplies
// the plain sum of the activations). Eight lanes at a time: rows are quantized once per matmul,
// and one at a time they took ~7 % of a 64-row prefill matmul (2026-11-29).
template <typename T, int QMAX>
void quantize_row(const float* src, int64_t k, T* dst, int64_t block_stride, float* xd,
                  float* xs) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < k / QK; ++b) {
    const float* x = src + b * QK;
    __m256 v[4];
    for (int u = 0; u < 4; ++u) v[u] = _mm256_loadu_ps(x + 8 * u);
    const __m256 amax = _mm256_max_ps(
        _mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
        _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
    const float d = hmax(amax) / static_cast<float>(QMAX);
    const __m256 id = _mm256_set1_ps(d > 0.f ? 1.f / d : 0.f);
    __m256i q[4];
    for (int u = 0; u < 4; ++u) q[u] = _mm256_cvtps_epi32(_mm256_mul_ps(v[u], id));
    T* out = dst + b * block_stride;
    if constexpr (sizeof(T) == 2) {
      for (int u = 0; u < 4; u += 2) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * u),
                            _mm256_permute4x64_epi64(_mm256_packs_epi32(q[u], q[u + 1]), 0xD8));
      }
    } else {
      const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]),
                                               _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                          _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
    xd[b] = d;
    xs[b] = hsum(_mm256_add_ps(_mm256_add_ps(v[0], v[1]), _mm256_add_ps(v[2], v[3])));
  }
}

// RMSNorm(row) * w into out: the sum of squares in double, four lanes at a time.
inline void rms_norm_row(const float* row, const float* w, int64_t k, double eps, float* out) {
  __m256d ss = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 4 <= k; i += 4) {
    const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(row + i));
    ss = _mm256_add_pd(ss, _mm256_mul_pd(v, v));
  }
  double lanes[4];
  _mm256_storeu_pd(lanes, ss);
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < k; ++i) sum += static_cast<double>(row[i]) * row[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(k) + eps));
  const __m256 iv = _mm256_set1_ps(inv);
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(row + j), iv),
                                            _mm256_loadu_ps(w + j)));
  }
  for (; j < k; ++j) out[j] = row[j] * inv * w[j];
}

// Rows per parallel task for the per-row work before a matmul (norm, SwiGLU, quantizing): a
// decode step's one row, or a keystroke's few, stay on the calling thread.
constexpr int64_t ROW_GRAIN = 8;

// The set-up a tile of up to TILE output rows (r0, a multiple of SCALE_ROWS) needs for X input
// rows: sc [b][X][TILE], the block scales d * dx of every (block, input row, output row), and
// mt [X][TILE], the zero-point terms sum(m * sum(x)) over the blocks in block order. d and m
// [n/8, nb, 8] (half): SCALE_ROWS output rows a vector. Per (input row, output row) pair the
// operations and their order are the same whatever X, the tile or the thread.
template <int X>
inline void q4_setup(const uint16_t* dw, const uint16_t* mw, int64_t r0, int64_t rows, int64_t nb,
                     const float* xd, const float* xs, float* sc, float* mt) {
  for (int64_t g = 0; g < (rows + SCALE_ROWS - 1) / SCALE_ROWS; ++g) {
    const int64_t off = (r0 / SCALE_ROWS + g) * nb * SCALE_ROWS;
    const uint16_t* d = dw + off;
    const uint16_t* m = mw + off;
    __m256 mv[X];
    for (int i = 0; i < X; ++i) mv[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + b * SCALE_ROWS)));
      const __m256 m8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(m + b * SCALE_ROWS)));
      for (int i = 0; i < X; ++i) {
        _mm256_storeu_ps(sc + (b * X + i) * TILE + g * SCALE_ROWS,
                         _mm256_mul_ps(dv, _mm256_set1_ps(xd[i * nb + b])));
        mv[i] = _mm256_fmadd_ps(m8, _mm256_set1_ps(xs[i * nb + b]), mv[i]);
      }
    }
    for (int i = 0; i < X; ++i) _mm256_storeu_ps(mt + i * TILE + g * SCALE_ROWS, mv[i]);
  }
}

// X input rows times R output rows of 4-bit weights. Row layout: for each block of 32 inputs,
// 16 bytes where byte j holds q[j] (low nibble) and q[j + 16] (high nibble); the block's scale
// d and minimum m make w = q * d + m (q4_setup). The X input rows come interleaved by block (y:
// block b of row i at (b * X + i) * 32, see row_group), so each block's inputs sit at fixed
// offsets from one pointer, and so do the block scales (sc, from q4_setup, offset to the first
// of the R rows within the tile). Per (input row, output row) pair the work is always the same:
// one fused multiply-add per block in block order, then the zero-point term. The microkernel
// shape (X, R) only decides how many pairs share a weight unpack or an input load.
template <int X, int R>
inline void q4_tile(const uint8_t* qs, int64_t row_bytes, int64_t nb, const int16_t* y,
                    const float* sc, const float* mt, float* out, int64_t out_stride,
                    bool accumulate) {
  __m256 acc[X][R];
  for (int i = 0; i < X; ++i) {
    for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_ps();
  }
  const __m256i low = _mm256_set1_epi16(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    // Each weight byte zero-extended to 16 bits holds both nibbles: q[j] and q[j + 16].
    __m256i lo[R], hi[R];
    for (int r = 0; r < R; ++r) {
      const __m256i both = _mm256_cvtepu8_epi16(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + r * row_bytes + b * 16)));
      lo[r] = _mm256_and_si256(both, low);
      hi[r] = _mm256_srli_epi16(both, 4);
    }
    const int16_t* yb = y + b * X * QK;
    const float* s = sc + b * X * TILE;
    for (int i = 0; i < X; ++i) {
      const __m256i y0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb + i * QK));
      const __m256i y1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb + i * QK + 16));
      for (int r = 0; r < R; ++r) {
#ifdef __AVX512VNNI__  // built with VNNI where the CPU has it (kernels.py): the same sums
        const __m256i p = _mm256_dpwssd_epi32(_mm256_madd_epi16(lo[r], y0), hi[r], y1);
#else
        const __m256i p =
            _mm256_add_epi32(_mm256_madd_epi16(lo[r], y0), _mm256_madd_epi16(hi[r], y1));
#endif
        acc[i][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(s + i * TILE + r), _mm256_cvtepi32_ps(p),
                                    acc[i][r]);
      }
    }
  }
  for (int i = 0; i < X; ++i) {
    for (int r = 0; r < R; ++r) {
      const float y_ir = hsum(acc[i][r]) + mt[i * TILE + r];
      float& o = out[i * out_stride + r];
      o = accumulate ? o + y_ir : y_ir;  // the residual add x + y, in place
    }
  }
}

// The rows of a matmul's input go through the 4-bit kernel in groups: eights (prefill), then
// a four, then the remaining 3, 2 or 1. Row r's group starts at row `start` and has `size` rows;
// its quantized blocks are interleaved with the group's other rows (q4_tile's y).
struct RowGroup {
  int64_t start, size;
};
inline RowGroup row_group(int64_t m, int64_t r) {
  const int64_t eights = m / PREFILL_ROWS * PREFILL_ROWS;
  if (r < eights) return {r / PREFILL_ROWS * PREFILL_ROWS, PREFILL_ROWS};
  const int64_t fours = eights + (m - eights) / 4 * 4;
  if (r < fours) return {eights, 4};
  return {fours, m - fours};
}

// R output rows of int8 weights (one scale per row, applied by the caller) against one row.
template <int R>
inline void q8_rows(const int8_t* w, int64_t k, int64_t nb, const int8_t* xq, const float* xd,
                    float* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * QK));
    const __m256 dx = _mm256_set1_ps(xd[b]);
    for (int r = 0; r < R; ++r) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * k + b * QK));
      // maddubs wants unsigned x signed: |w| times y with w's sign moved onto y.
      const __m256i p = _mm256_madd_epi16(
          _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(y, wv)), ones);
      acc[r] = _mm256_fmadd_ps(dx, _mm256_cvtepi32_ps(p), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

// Per-thread scratch memory that lives across calls: the quantized rows, the normed or SwiGLU
// rows a call only reads, the kernel's block scales. A decode step makes ~120 matmul calls;
// as tensors these were ~600 allocations a step. Each slot serves one purpose within a call.
enum Scratch {
  QUANTIZED,
  ROW_SCALES,
  ROW_SUMS,
  ROWS_IN,
  BLOCK_SCALES,
  ATTENTION_SCORES,
  QUERIES,           // attention: the rotated query rows
  LAYER_QKV,         // decoder_layers: a layer's q/k/v rows, attention output, gate/up rows
  LAYER_ATTENTION,
  LAYER_GATE_UP,
  SCRATCH_SLOTS
};

template <typename T>
T* scratch(Scratch slot, int64_t count) {
  thread_local std::vector<char> buffers[SCRATCH_SLOTS];
  std::vector<char>& buf = buffers[slot];
  const size_t bytes = static_cast<size_t>(count) * sizeof(T) + 64;
  if (buf.size() < bytes) buf.resize(bytes);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<T*>((p + 63) & ~static_cast<uintptr_t>(63));  // cache-line aligned
}

template <typename T>
struct Quantized {
  const T* xq;
  const float *xd, *xs;
  const float* xf;  // the float rows that were quantized: x, or RMSNorm(x) * norm
};

// Quantize x [m, k] to T per block of 32 (int8 for the 8-bit head, int16 for the 4-bit layers,
// whose accuracy int8 activations cost: 94.4 vs 97.8 % greedy agreement with fp32), or
// RMSNorm(x) * norm first when `norm` is given (the layer norm that precedes every matmul of
// the decoder, fused here to save a pass and a call). GROUPED: the quantized rows are laid out
// in the 4-bit kernel's row groups (row_group), else row after row. The results are scratch.
template <typename T, int QMAX, bool GROUPED>
Quantized<T> quantize(const float* src, int64_t m, int64_t k, const float* wp, double eps) {
  const int64_t nb = k / QK;
  float* normed = wp != nullptr ? scratch<float>(ROWS_IN, m * k) : nullptr;
  T* xq = scratch<T>(QUANTIZED, m * k);
  float* xd = scratch<float>(ROW_SCALES, m * nb);
  float* xs = scratch<float>(ROW_SUMS, m * nb);
  at::parallel_for(0, m, ROW_GRAIN, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = src + r * k;
      if (normed != nullptr) {
        rms_norm_row(row, wp, k, eps, normed + r * k);
        row = normed + r * k;
      }
      if constexpr (GROUPED) {
        const RowGroup g = row_group(m, r);
        quantize_row<T, QMAX>(row, k, xq + g.start * k + (r - g.start) * QK, g.size * QK,
                              xd + r * nb, xs + r * nb);
      } else {
        quantize_row<T, QMAX>(row, k, xq + r * k, QK, xd + r * nb, xs + r * nb);
      }
    }
  });
  return {xq, xd, xs, normed != nullptr ? normed : src};
}

// silu(gate) * up for rows [m, 2k] of the fused gate/up output: the input of the MLP's down
// projection (scratch), computed here to save the decoder three tensor ops a layer.
const float* swiglu(const float* src, int64_t m, int64_t k) {
  float* dst = scratch<float>(ROWS_IN, m * k);
  const __m256 one = _mm256_set1_ps(1.f);
  at::parallel_for(0, m, ROW_GRAIN, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = src + r * 2 * k;
      const float* u = g + k;
      float* o = dst + r * k;
      int64_t i = 0;
      for (; i + 8 <= k; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        const __m256 e = exp_clamped(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)),
                                              _mm256_loadu_ps(u + i)));
      }
      for (; i < k; ++i) o[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
    }
  });
  return dst;
}

void check_input(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2,
              "wren kernels take a 2-D float32 CPU tensor");
  TORCH_CHECK(x.size(1) % QK == 0, "input size must be a multiple of 32");
}

// The norm weight's floats (nullptr without a norm).
const float* norm_weight(const std::optional<at::Tensor>& norm, int64_t k) {
  if (!norm.has_value() || !norm->defined()) return nullptr;
  TORCH_CHECK(norm->scalar_type() == at::kFloat && norm->is_contiguous() && norm->numel() == k,
              "norm weight must be a contiguous float [in]");
  return norm->data_ptr<float>();
}

inline float dot_half(const uint16_t* a, const float* x, int64_t len) {
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) {
    const __m256 av = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + j)));
    acc = _mm256_fmadd_ps(av, _mm256_loadu_ps(x + j), acc);
  }
  float s = hsum(acc);
  for (; j < len; ++j) s += _cvtsh_ss(a[j]) * x[j];
  return s;
}

// dot_half's sum with `a` already converted to float: the same operations in the same order.
inline float dot_float(const float* a, const float* x, int64_t len) {
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) {
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(x + j), acc);
  }
  float s = hsum(acc);
  for (; j < len; ++j) s += a[j] * x[j];
  return s;
}

// dot_float of four rows of `a` (consecutive, `len` apart) with x, into out[0..4]: four
// independent sums in flight, each the same operations in the same order as dot_float's.
inline void dot_float4(const float* a, const float* x, int64_t len, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) {
    const __m256 xv = _mm256_loadu_ps(x + j);
    for (int u = 0; u < 4; ++u) {
      acc[u] = _mm256_fmadd_ps(_mm256_loadu_ps(a + u * len + j), xv, acc[u]);
    }
  }
  for (int u = 0; u < 4; ++u) {
    float s = hsum(acc[u]);
    for (int64_t t = j; t < len; ++t) s += a[u * len + t] * x[t];
    out[u] = s;
  }
}

// A tuned adapter's low-rank update, served beside the 4-bit weights: out[i, o] += B[o] . z[i, p]
// with z[i, p] = A[p] @ xf[i] for output row o of part p. A [P, r, k] half: one A per part of a
// fused linear (q/k/v, gate/up); B [n, r] half: every output row's B row; ends [P] int64: each
// part's last output row + 1. Each tile of output rows adds its B rows right after its matmul,
// inside the same parallel task, so the update costs no extra thread wake-ups. For one or two
// input rows (a decode step) each task computes the z of the parts its rows belong to, so the
// threads share that work too; for more rows z is computed once, rows in parallel. z is the
// same sequence of operations either way: each output row depends on its input row alone.
struct LowRank {
  const uint16_t* a = nullptr;
  const uint16_t* b = nullptr;
  const int64_t* ends = nullptr;
  int64_t parts = 0, r = 0, pr = 0;

  LowRank(const std::optional<at::Tensor>& lora_a, const std::optional<at::Tensor>& lora_b,
          const std::optional<at::Tensor>& lora_ends, int64_t k, int64_t n) {
    if (!lora_a.has_value() || !lora_a->defined()) return;
    TORCH_CHECK(lora_b.has_value() && lora_b->defined() && lora_ends.has_value() &&
                    lora_ends->defined(),
                "a low-rank update needs A, B and the part ends");
    const at::Tensor& at_a = *lora_a;
    const at::Tensor& at_b = *lora_b;
    const at::Tensor& at_e = *lora_ends;
    TORCH_CHECK(at_a.scalar_type() == at::kHalf && at_a.is_contiguous() && at_a.dim() == 3 &&
                    at_a.size(2) == k,
                "low-rank A must be half [parts, rank, in]");
    parts = at_a.size(0);
    r = at_a.size(1);
    pr = parts * r;
    TORCH_CHECK(at_b.scalar_type() == at::kHalf && at_b.is_contiguous() && at_b.dim() == 2 &&
                    at_b.size(0) == n && at_b.size(1) == r,
                "low-rank B must be half [out, rank]");
    TORCH_CHECK(at_e.scalar_type() == at::kLong && at_e.is_contiguous() && at_e.numel() == parts &&
                    at_e.data_ptr<int64_t>()[parts - 1] == n,
                "low-rank part ends must be int64 [parts], the last one the output size");
    a = reinterpret_cast<const uint16_t*>(at_a.data_ptr<at::Half>());
    b = reinterpret_cast<const uint16_t*>(at_b.data_ptr<at::Half>());
    ends = at_e.data_ptr<int64_t>();
  }

  bool active() const { return a != nullptr; }

  int64_t part_of(int64_t o) const {
    int64_t p = 0;
    while (o >= ends[p]) ++p;
    return p;
  }

  // z [m, pr] of input rows i0..i1 of xf [m, k] for the parts of output rows o0..o1. For
  // more than two rows (prefill) A's rows are converted to float once, not once per input row;
  // the sums are the same either way (dot_float and dot_half add in the same order).
  void fill(const float* xf, int64_t k, int64_t i0, int64_t i1, int64_t o0, int64_t o1,
            float* z) const {
    const int64_t j0 = part_of(o0) * r, j1 = (part_of(o1 - 1) + 1) * r;
    if (i1 - i0 <= 2) {
      for (int64_t i = i0; i < i1; ++i) {
        for (int64_t j = j0; j < j1; ++j) z[i * pr + j] = dot_half(a + j * k, xf + i * k, k);
      }
      return;
    }
    std::vector<float> af(static_cast<size_t>((j1 - j0) * k));
    for (int64_t e = 0; e < (j1 - j0) * k; ++e) af[e] = _cvtsh_ss(a[j0 * k + e]);
    for (int64_t i = i0; i < i1; ++i) {
      const float* x = xf + i * k;
      int64_t j = j0;
      for (; j + 4 <= j1; j += 4) dot_float4(af.data() + (j - j0) * k, x, k, z + i * pr + j);
      for (; j < j1; ++j) z[i * pr + j] = dot_float(af.data() + (j - j0) * k, x, k);
    }
  }

  // B rows o0..o1 times z, added to those columns of out [m, n]. Each output is dot_half(B[o],
  // z) for any m, so a row's result does not depend on how many rows came with it. One or two
  // rows (a decode step): dot_half per output. More (prefill): B's rows converted to float and
  // transposed once per tile, then 8 outputs per vector, row by row (not column by column
  // through out); the sums replay dot_half's exactly: lane l of its accumulator is the chain
  // over the rank's chunks of 8, and hsum adds ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)).
  void add(const float* z, float* out, int64_t m, int64_t n, int64_t o0, int64_t o1) const {
    if (m <= 2) {
      int64_t p = part_of(o0);
      for (int64_t o = o0; o < o1; ++o) {
        while (o >= ends[p]) ++p;
        for (int64_t i = 0; i < m; ++i) {
          out[i * n + o] += dot_half(b + o * r, z + i * pr + p * r, r);
        }
      }
      return;
    }
    const int64_t w = o1 - o0, rv = r / 8 * 8;
    std::vector<float> bt(static_cast<size_t>(r * w));
    for (int64_t o = o0; o < o1; ++o) {
      for (int64_t j = 0; j < r; ++j) bt[j * w + (o - o0)] = _cvtsh_ss(b[o * r + j]);
    }
    for (int64_t s0 = o0; s0 < o1;) {
      const int64_t p = part_of(s0), s1 = std::min(o1, ends[p]);
      const int64_t vec_end = s0 + (s1 - s0) / 8 * 8;
      for (int64_t i = 0; i < m; ++i) {
        const float* zi = z + i * pr + p * r;
        float* row = out + i * n;
        for (int64_t o = s0; o < vec_end; o += 8) {
          const float* bo = bt.data() + (o - o0);
          __m256 lane[8];
          for (int l = 0; l < 8; ++l) lane[l] = _mm256_setzero_ps();
          for (int64_t c = 0; c < rv; c += 8) {
            for (int l = 0; l < 8; ++l) {
              lane[l] = _mm256_fmadd_ps(_mm256_loadu_ps(bo + (c + l) * w),
                                        _mm256_set1_ps(zi[c + l]), lane[l]);
            }
          }
          __m256 sum = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(lane[0], lane[4]),
                                                   _mm256_add_ps(lane[2], lane[6])),
                                     _mm256_add_ps(_mm256_add_ps(lane[1], lane[5]),
                                                   _mm256_add_ps(lane[3], lane[7])));
          for (int64_t j = rv; j < r; ++j) {
            sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_loadu_ps(bo + j * w),
                                                   _mm256_set1_ps(zi[j])));
          }
          _mm256_storeu_ps(row + o, _mm256_add_ps(_mm256_loadu_ps(row + o), sum));
        }
        for (int64_t o = vec_end; o < s1; ++o) row[o] += dot_half(b + o * r, zi, r);
      }
      s0 = s1;
    }
  }
};

// One matrix of 4-bit weights: qs [n, k/2] (uint8), d and m [n/8, k/32, 8] (half; q4_setup).
struct Q4Weights {
  const uint8_t* qs;
  const uint16_t* d;
  const uint16_t* m;
  int64_t n, k;
};

Q4Weights q4_weights(const at::Tensor& qs, const at::Tensor& dw, const at::Tensor& mw) {
  const int64_t n = qs.size(0), k = qs.size(1) * 2, nb = k / QK;
  const int64_t padded = (n + SCALE_ROWS - 1) / SCALE_ROWS * SCALE_ROWS;
  TORCH_CHECK(qs.scalar_type() == at::kByte && qs.is_contiguous() && qs.dim() == 2 && k % QK == 0,
              "q4 weights must be uint8 [out, in/2]");
  TORCH_CHECK(dw.scalar_type() == at::kHalf && dw.is_contiguous() && dw.numel() == padded * nb &&
                  mw.scalar_type() == at::kHalf && mw.is_contiguous() &&
                  mw.numel() == padded * nb,
              "q4 scales and minimums must be half [out/8, in/32, 8] (out padded to 8 rows)");
  return {qs.data_ptr<uint8_t>(), reinterpret_cast<const uint16_t*>(dw.data_ptr<at::Half>()),
          reinterpret_cast<const uint16_t*>(mw.data_ptr<at::Half>()), n, k};
}

// out[m, n] = x[m, k] @ W.T, or out += it (`accumulate`: a residual added in place, the same
// float add as x + y), with RMSNorm(x) * norm first when `norm` is given and a low-rank update
// when `low_rank` is active (not with `accumulate`: the update belongs inside the sum).
void q4_matmul(const float* x, int64_t m, const Q4Weights& w, const float* norm, double eps,
               const LowRank& low_rank, bool accumulate, float* out) {
  TORCH_CHECK(!(accumulate && low_rank.active()), "q4_matmul: no residual with a low-rank update");
  const int64_t k = w.k, n = w.n, nb = k / QK;
  const Quantized<int16_t> q = quantize<int16_t, 32767, true>(x, m, k, norm, eps);
  const float* xf = q.xf;
  const bool z_per_task = m <= 2;
  std::vector<float> z_shared;
  if (low_rank.active() && !z_per_task) {
    z_shared.resize(static_cast<size_t>(m * low_rank.pr));
    at::parallel_for(0, m, 1, [&](int64_t i0, int64_t i1) {
      low_rank.fill(xf, k, i0, i1, 0, n, z_shared.data());
    });
  }
  const uint8_t* qp = w.qs;
  const uint16_t *dp = w.d, *mp = w.m;
  const int16_t* xq = q.xq;
  const float *xd = q.xd, *xs = q.xs;
  float* op = out;
  const int64_t rb = k / 2;
  at::parallel_for(0, (n + TILE - 1) / TILE, 1, [&](int64_t t0, int64_t t1) {
    float* s = scratch<float>(BLOCK_SCALES, nb * PREFILL_ROWS * TILE);
    float mt[PREFILL_ROWS * TILE];
    std::vector<float> z_task;
    const float* z = z_shared.data();
    if (low_rank.active() && z_per_task) {
      z_task.resize(static_cast<size_t>(m * low_rank.pr));
      low_rank.fill(xf, k, 0, m, t0 * TILE, std::min(n, t1 * TILE), z_task.data());
      z = z_task.data();
    }
    // X input rows (starting at i) against output rows r0..r1 (one tile): the set-up, then RW
    // output rows at a time (4; PREFILL_OUT for a group of PREFILL_ROWS), then one by one.
    // Their weight bytes are requested first.
    auto rows = [&](auto x_rows, int64_t i, int64_t r0, int64_t r1) {
      constexpr int X = decltype(x_rows)::value;
      constexpr int RW = X >= PREFILL_ROWS ? PREFILL_OUT : X >= 3 ? 2 : 4;
      const int64_t xo = i * k, bo = i * nb;
      // The tile's scales, and its first rows so their loads overlap the set-up.
      const int64_t scale_bytes = (r1 - r0 + SCALE_ROWS - 1) / SCALE_ROWS * SCALE_ROWS * nb * 2;
      prefetch_bytes(dp + r0 * nb, scale_bytes);
      prefetch_bytes(mp + r0 * nb, scale_bytes);
      prefetch_bytes(qp + r0 * rb, std::min<int64_t>(RW, r1 - r0) * rb);
      q4_setup<X>(dp, mp, r0, r1 - r0, nb, xd + bo, xs + bo, s, mt);
      int64_t r = r0;
      auto tile = [&](auto out_rows, int64_t r) {
        constexpr int R = decltype(out_rows)::value;
        q4_tile<X, R>(qp + r * rb, rb, nb, xq + xo, s + (r - r0), mt + (r - r0),
                      op + i * n + r, n, accumulate);
      };
      for (; r + RW <= r1; r += RW) {
        prefetch_bytes(qp + r * rb, RW * rb);
        tile(std::integral_constant<int, RW>{}, r);
      }
      for (; r < r1; ++r) tile(std::integral_constant<int, 1>{}, r);
    };
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * TILE, r1 = std::min(n, r0 + TILE);
      int64_t i = 0;
      for (; i + PREFILL_ROWS <= m; i += PREFILL_ROWS) {
        rows(std::integral_constant<int, PREFILL_ROWS>{}, i, r0, r1);
      }
      for (; i + 4 <= m; i += 4) rows(std::integral_constant<int, 4>{}, i, r0, r1);
      if (m - i == 3) rows(std::integral_constant<int, 3>{}, i, r0, r1);
      if (m - i == 2) rows(std::integral_constant<int, 2>{}, i, r0, r1);
      if (m - i == 1) rows(std::integral_constant<int, 1>{}, i, r0, r1);
      if (low_rank.active()) low_rank.add(z, op, m, n, r0, r1);
    }
  });
}

// y[m, n] = x[m, k] @ W.T for 4-bit W given as qs [n, k/2] (uint8), d and m (half, see Q4Weights),
// plus a low-rank update (LowRank) when lora_a, lora_b and lora_ends are given. With `glu`, x
// is the gate/up output [m, 2k] and the input is silu(gate) * up (see swiglu).
at::Tensor q4_linear(const at::Tensor& x_in, const at::Tensor& qs, const at::Tensor& dw,
                     const at::Tensor& mw, const std::optional<at::Tensor>& norm, double eps,
                     const std::optional<at::Tensor>& lora_a,
                     const std::optional<at::Tensor>& lora_b,
                     const std::optional<at::Tensor>& lora_ends, bool glu) {
  check_input(x_in);
  const Q4Weights w = q4_weights(qs, dw, mw);
  const at::Tensor xc = x_in.contiguous();
  const int64_t m = xc.size(0);
  TORCH_CHECK(xc.size(1) == (glu ? 2 * w.k : w.k), "q4_linear: the input size does not fit");
  const float* nw = norm_weight(norm, w.k);
  TORCH_CHECK(!glu || nw == nullptr,
              "q4_linear(glu=True) takes gate/up rows [m, 2 * in] and no norm");
  const float* x = glu ? swiglu(xc.data_ptr<float>(), m, w.k) : xc.data_ptr<float>();
  at::Tensor out = at::empty({m, w.n}, xc.options());
  q4_matmul(x, m, w, nw, eps, LowRank(lora_a, lora_b, lora_ends, w.k, w.n), false,
            out.data_ptr<float>());
  return out;
}

// y[m, n] = x[m, k] @ (W * scale[:, None]).T for int8 W [n, k] and float scale [n].
at::Tensor q8_linear(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& scale,
                     const std::optional<at::Tensor>& norm, double eps) {
  check_input(x_in);
  const at::Tensor x = x_in.contiguous();
  const int64_t m = x.size(0), k = x.size(1), n = w.size(0), nb = k / QK;
  TORCH_CHECK(w.scalar_type() == at::kChar && w.is_contiguous() && w.size(1) == k,
              "q8 weights must be int8 [out, in]");
  TORCH_CHECK(scale.scalar_type() == at::kFloat && scale.numel() == n,
              "q8 scales must be float [out]");
  const Quantized<int8_t> q =
      quantize<int8_t, 127, false>(x.data_ptr<float>(), m, k, norm_weight(norm, k), eps);
  at::Tensor out = at::empty({m, n}, x.options());
  const int8_t* wp = w.data_ptr<int8_t>();
  const float* sp = scale.contiguous().data_ptr<float>();
  const int8_t* xq = q.xq;
  const float* xd = q.xd;
  float* op = out.data_ptr<float>();
  at::parallel_for(0, (n + TILE - 1) / TILE, 1, [&](int64_t t0, int64_t t1) {
    float tmp[4];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * TILE, r1 = std::min(n, r0 + TILE);
      for (int64_t i = 0; i < m; ++i) {
        const int8_t* xqi = xq + i * k;
        const float* xdi = xd + i * nb;
        float* oi = op + i * n;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
          prefetch_bytes<_MM_HINT_T1>(wp + r * k + HEAD_PREFETCH_BYTES, 4 * k);
          prefetch_bytes(wp + r * k, 4 * k);
          q8_rows<4>(wp + r * k, k, nb, xqi, xdi, tmp);
          for (int j = 0; j < 4; ++j) oi[r + j] = tmp[j] * sp[r + j];
        }
        for (; r < r1; ++r) {
          q8_rows<1>(wp + r * k, k, nb, xqi, xdi, tmp);
          oi[r] = tmp[0] * sp[r];
        }
      }
    }
  });
  return out;
}

// RoPE of one head (x * cos + rotate_half(x) * sin, the same products and sum as torch's
// element-wise ops, so the rotated values are bit-identical to the Python path's).
inline void rope(const float* x, const float* c, const float* s, int64_t hd, float* out) {
  const int64_t half = hd / 2;
  for (int64_t d = 0; d < half; ++d) out[d] = x[d] * c[d] + (-x[d + half]) * s[d];
  for (int64_t d = half; d < hd; ++d) out[d] = x[d] * c[d] + x[d - half] * s[d];
}

// Keys and values are kept as float or as half (the default cache: half the bytes a decode
// step reads at 1,000 positions); either way they are multiplied in float.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline void store_kv(const float* x, int64_t n, float* out) { std::copy(x, x + n, out); }
inline void store_kv(const float* x, int64_t n, uint16_t* out) {
  for (int64_t d = 0; d < n; d += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + d),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + d), _MM_FROUND_TO_NEAREST_INT));
  }
}

// scores[:len] -> exp(scores - mx) in place (8 at a time, then one by one); returns their sum.
inline float softmax_numerators(float* scores, int64_t len, float mx) {
  const __m256 mv = _mm256_set1_ps(mx);
  __m256 sv = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) {
    const __m256 e = exp_clamped(_mm256_sub_ps(_mm256_loadu_ps(scores + j), mv));
    _mm256_storeu_ps(scores + j, e);
    sv = _mm256_add_ps(sv, e);
  }
  float sum = hsum(sv);
  for (; j < len; ++j) {
    float tail[8] = {scores[j] - mx, 0, 0, 0, 0, 0, 0, 0};
    _mm256_storeu_ps(tail, exp_clamped(_mm256_loadu_ps(tail)));
    scores[j] = tail[0];
    sum += tail[0];
  }
  return sum;
}

// One decode position of G query heads that share a key/value head (consecutive in q and out):
// softmax(q . K[:len] * scale) . V[:len] for each, HD8 = head_dim / 8 vectors. Four keys at a
// time for the scores and one accumulator per vector for the weighted sum, so the multiply-adds
// don't wait on each other. Each key and value vector is loaded (and converted from half) once
// for all G heads. Per head the operations and their order are fixed
// (four keys at a time for the scores, then single keys; the weighted sum in key order), so a
// head's result does not depend on G or on the rows computed beside it.
template <int HD8, int G, typename KV>
void attend_heads(const float* q, const KV* k, const KV* v, int64_t len, float scale,
                  float* scores, int64_t score_stride, float* out) {
  constexpr int64_t hd = HD8 * 8;
  // The queries, loaded once: one head's stay in registers (a decode step's case); three
  // heads' do not fit beside their accumulators, and the compiler keeps them in L1.
  __m256 qv[G][HD8];
  for (int g = 0; g < G; ++g) {
    for (int d = 0; d < HD8; ++d) qv[g][d] = _mm256_loadu_ps(q + g * hd + d * 8);
  }
  float mx[G];
  for (int g = 0; g < G; ++g) mx[g] = -INFINITY;
  int64_t j = 0;
  for (; j + 4 <= len; j += 4) {
    __m256 a[G][4];
    for (int u = 0; u < 4; ++u) {
      const KV* kj = k + (j + u) * hd;
      const __m256 k0 = load8(kj);
      for (int g = 0; g < G; ++g) a[g][u] = _mm256_mul_ps(qv[g][0], k0);
      for (int d = 1; d < HD8; ++d) {
        const __m256 kd = load8(kj + d * 8);
        for (int g = 0; g < G; ++g) {
          a[g][u] = _mm256_fmadd_ps(qv[g][d], kd, a[g][u]);
        }
      }
    }
    for (int g = 0; g < G; ++g) {
      // Four horizontal sums at once: lanes of h hold the pairwise sums of a[g][0..3].
      const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a[g][0], a[g][1]),
                                      _mm256_hadd_ps(a[g][2], a[g][3]));
      const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
      float* sg = scores + g * score_stride;
      _mm_storeu_ps(sg + j, _mm_mul_ps(sums, _mm_set1_ps(scale)));
      for (int u = 0; u < 4; ++u) mx[g] = std::max(mx[g], sg[j + u]);
    }
  }
  for (; j < len; ++j) {
    const KV* kj = k + j * hd;
    __m256 a[G];
    const __m256 k0 = load8(kj);
    for (int g = 0; g < G; ++g) a[g] = _mm256_mul_ps(qv[g][0], k0);
    for (int d = 1; d < HD8; ++d) {
      const __m256 kd = load8(kj + d * 8);
      for (int g = 0; g < G; ++g) a[g] = _mm256_fmadd_ps(qv[g][d], kd, a[g]);
    }
    for (int g = 0; g < G; ++g) {
      scores[g * score_stride + j] = hsum(a[g]) * scale;
      mx[g] = std::max(mx[g], scores[g * score_stride + j]);
    }
  }
  float inv[G];
  for (int g = 0; g < G; ++g) {
    inv[g] = 1.f / softmax_numerators(scores + g * score_stride, len, mx[g]);
  }
  // The weighted sum of values, DC vectors of the head at a time: one head's whole (one pass
  // over the values), several heads' in parts (their accumulators would not fit in registers).
  constexpr int DC = G == 1 ? HD8 : HD8 % 4 == 0 ? 4 : 2;
  for (int d0 = 0; d0 < HD8; d0 += DC) {
    __m256 acc[G][DC];
    for (int g = 0; g < G; ++g) {
      for (int c = 0; c < DC; ++c) acc[g][c] = _mm256_setzero_ps();
    }
    for (int64_t jj = 0; jj < len; ++jj) {
      __m256 vv[DC];
      for (int c = 0; c < DC; ++c) vv[c] = load8(v + jj * hd + (d0 + c) * 8);
      for (int g = 0; g < G; ++g) {
        const __m256 w = _mm256_set1_ps(scores[g * score_stride + jj]);
        for (int c = 0; c < DC; ++c) acc[g][c] = _mm256_fmadd_ps(w, vv[c], acc[g][c]);
      }
    }
    for (int g = 0; g < G; ++g) {
      const __m256 iv = _mm256_set1_ps(inv[g]);
      for (int c = 0; c < DC; ++c) {
        _mm256_storeu_ps(out + g * hd + (d0 + c) * 8, _mm256_mul_ps(acc[g][c], iv));
      }
    }
  }
}

// Query heads per attend_heads call: the accumulators of four keys for three heads fit in
// registers; a larger group (7 heads share one in Qwen2.5-0.5B) goes in threes, then the rest.
constexpr int64_t HEADS_AT_ONCE = 3;

template <typename KV>
using AttendHeads = void (*)(const float*, const KV*, const KV*, int64_t, float, float*, int64_t,
                             float*);

template <int HD8, typename KV>
AttendHeads<KV> attend_heads_g(int64_t g) {
  switch (g) {
    case 1: return attend_heads<HD8, 1, KV>;
    case 2: return attend_heads<HD8, 2, KV>;
    case 3: return attend_heads<HD8, 3, KV>;
    default: return nullptr;
  }
}

template <typename KV>
AttendHeads<KV> attend_heads_for(int64_t hd, int64_t g) {
  switch (hd) {
    case 32: return attend_heads_g<4, KV>(g);
    case 64: return attend_heads_g<8, KV>(g);
    case 80: return attend_heads_g<10, KV>(g);
    case 96: return attend_heads_g<12, KV>(g);
    case 128: return attend_heads_g<16, KV>(g);
    default: return nullptr;
  }
}

// Decode rows of one layer: RoPE on q and k of each of the t rows of qkv [t, (nh + 2 nkv) hd],
// keys/values written into the layer's cache ck/cv [nkv, capacity, hd] (float or half) at
// pos.., then each row attends over exactly the positions up to its own. Each (row, head) is
// computed alone, so a row's output is the same whatever t is (draft verification = one-token
// steps). The output rows [t, nh * hd] go to `op`.
template <typename KV>
void attend_layer(const float* src, int64_t t, KV* kp, KV* vp, int64_t cap, int64_t hd,
                  const float* c, const float* s, int64_t pos, int64_t nh, int64_t nkv,
                  double scale, float* op) {
  TORCH_CHECK(attend_heads_for<KV>(hd, 1) != nullptr,
              "attend_decode: head_dim must be 32/64/80/96/128");
  float* qp = scratch<float>(QUERIES, t * nh * hd);
  float rotated[128];  // head_dim <= 128 (checked above)
  const int64_t width = (nh + 2 * nkv) * hd;
  for (int64_t i = 0; i < t; ++i) {
    const float* row = src + i * width;
    for (int64_t h = 0; h < nh; ++h) rope(row + h * hd, c + i * hd, s + i * hd, hd, qp + (i * nh + h) * hd);
    for (int64_t h = 0; h < nkv; ++h) {
      rope(row + (nh + h) * hd, c + i * hd, s + i * hd, hd, rotated);
      store_kv(rotated, hd, kp + (h * cap + pos + i) * hd);
      store_kv(row + (nh + nkv + h) * hd, hd, vp + (h * cap + pos + i) * hd);
    }
  }
  const int64_t group = nh / nkv;
  // Tasks: (row, key/value head, chunk of up to `heads` of its query heads). A decode step's
  // one or two rows take one head a task: three tasks for two threads left one idle half the
  // time (plain decode 158-161 against 163-177 tokens/s a head a task, 2026-11-29).
  const int64_t heads = t * nkv >= 8 ? HEADS_AT_ONCE : 1;
  const int64_t chunks = (group + heads - 1) / heads;
  const int64_t tasks = t * nkv * chunks;
  const int64_t work = t * nh * (pos + t) * hd;
  const int64_t grain = work < (1 << 16) ? tasks : 1;  // small: one thread, no wake-up cost
  at::parallel_for(0, tasks, grain, [&](int64_t b, int64_t e) {
    const int64_t stride = pos + t + 8;
    float* scores = scratch<float>(ATTENTION_SCORES, heads * stride);
    for (int64_t w = b; w < e; ++w) {
      const int64_t i = w / (nkv * chunks), kvh = w / chunks % nkv, c = w % chunks;
      const int64_t h0 = kvh * group + c * heads;
      const int64_t g = std::min(heads, (kvh + 1) * group - h0);
      attend_heads_for<KV>(hd, g)(qp + (i * nh + h0) * hd, kp + kvh * cap * hd,
                                  vp + kvh * cap * hd, pos + i + 1, static_cast<float>(scale),
                                  scores, stride, op + i * nh * hd + h0 * hd);
    }
  });
}

at::Tensor attend_decode(const at::Tensor& qkv_in, at::Tensor& ck, at::Tensor& cv,
                         const at::Tensor& cos_in, const at::Tensor& sin_in, int64_t pos,
                         int64_t nh, int64_t nkv, double scale) {
  const at::Tensor qkv = qkv_in.contiguous();
  const at::Tensor cs = cos_in.contiguous(), sn = sin_in.contiguous();
  const bool half = ck.scalar_type() == at::kHalf;
  TORCH_CHECK(qkv.scalar_type() == at::kFloat &&
                  (ck.scalar_type() == at::kFloat || half) &&
                  cv.scalar_type() == ck.scalar_type() && ck.is_contiguous() &&
                  cv.is_contiguous() && ck.dim() == 3 && nh % nkv == 0,
              "attend_decode: float32 rows, contiguous float32 or half caches "
              "[kv_heads, capacity, head_dim]");
  const int64_t t = qkv.size(0), hd = ck.size(2), cap = ck.size(1);
  TORCH_CHECK(qkv.size(1) == (nh + 2 * nkv) * hd && pos + t <= cap && hd % 8 == 0 &&
                  cs.size(0) == t && cs.size(1) == hd,
              "attend_decode: shapes do not fit");
  at::Tensor out = at::empty({t, nh * hd}, qkv.options());
  const float* c = cs.data_ptr<float>();
  const float* s = sn.data_ptr<float>();
  if (half) {
    attend_layer(qkv.data_ptr<float>(), t, reinterpret_cast<uint16_t*>(ck.data_ptr<at::Half>()),
                 reinterpret_cast<uint16_t*>(cv.data_ptr<at::Half>()), cap, hd, c, s, pos, nh,
                 nkv, scale, out.data_ptr<float>());
  } else {
    attend_layer(qkv.data_ptr<float>(), t, ck.data_ptr<float>(), cv.data_ptr<float>(), cap, hd,
                 c, s, pos, nh, nkv, scale, out.data_ptr<float>());
  }
  return out;
}

// Every decoder layer of one forward pass in one call: per layer RMSNorm + q/k/v, RoPE +
// cache write + attention, the output projection added to the residual, RMSNorm + gate/up,
// SwiGLU + down added to the residual -- the same kernel calls and adds the Python loop makes,
// without its ~10 interpreter round trips a layer (~1 ms of a ~6 ms decode step). The layers'
// weights come as a LayerStack, made once per model: passing its ~420 tensors as a list cost
// ~4 % of a decode step in conversions alone (2026-11-29). Intermediate rows are scratch, and
// the residual adds go into the output in place, so a step allocates one tensor.
// Tensors a layer: q4 (packed, d, m) of qkv, ln1, q4 of o, q4 of gate_up, ln2, q4 of down.
constexpr int64_t LAYER_PARTS = 14;

struct LayerWeights {
  Q4Weights qkv, o, gate_up, down;
  const float *ln1, *ln2;
};

struct LayerStack : torch::CustomClassHolder {
  std::vector<at::Tensor> tensors;  // kept alive for the pointers below
  std::vector<LayerWeights> layers;

  explicit LayerStack(std::vector<at::Tensor> ts) : tensors(std::move(ts)) {
    TORCH_CHECK(!tensors.empty() && tensors.size() % LAYER_PARTS == 0,
                "LayerStack: 14 tensors a layer");
    for (size_t i = 0; i < tensors.size(); i += LAYER_PARTS) {
      const at::Tensor* w = tensors.data() + i;
      LayerWeights l{q4_weights(w[0], w[1], w[2]), q4_weights(w[4], w[5], w[6]),
                     q4_weights(w[7], w[8], w[9]), q4_weights(w[11], w[12], w[13]),
                     norm_weight(w[3], w[0].size(1) * 2), norm_weight(w[10], w[7].size(1) * 2)};
      TORCH_CHECK(l.o.n == l.qkv.k && l.gate_up.k == l.qkv.k && l.down.n == l.qkv.k &&
                      l.gate_up.n == 2 * l.down.k,
                  "LayerStack: the layer's shapes do not fit together");
      layers.push_back(l);
    }
  }
  int64_t size() const { return static_cast<int64_t>(layers.size()); }
};

template <typename KV>
at::Tensor run_layers(const at::Tensor& x_in, const LayerStack& stack, KV* kp, KV* vp,
                      int64_t cap, int64_t hd, const float* c, const float* s, int64_t pos,
                      int64_t nh, int64_t nkv, double scale, double eps) {
  // The residual stream, updated in place.
  at::Tensor x = x_in.clone(at::MemoryFormat::Contiguous);
  float* xp = x.data_ptr<float>();
  const int64_t t = x.size(0);
  const LowRank none(std::nullopt, std::nullopt, std::nullopt, 0, 0);
  for (int64_t li = 0; li < stack.size(); ++li) {
    const LayerWeights& l = stack.layers[li];
    float* qkv = scratch<float>(LAYER_QKV, t * l.qkv.n);
    q4_matmul(xp, t, l.qkv, l.ln1, eps, none, false, qkv);
    float* attn = scratch<float>(LAYER_ATTENTION, t * l.o.k);
    const int64_t layer_offset = li * nkv * cap * hd;
    attend_layer(qkv, t, kp + layer_offset, vp + layer_offset, cap, hd, c, s, pos, nh, nkv, scale,
                 attn);
    q4_matmul(attn, t, l.o, nullptr, 0.0, none, true, xp);
    float* gate_up = scratch<float>(LAYER_GATE_UP, t * l.gate_up.n);
    q4_matmul(xp, t, l.gate_up, l.ln2, eps, none, false, gate_up);
    q4_matmul(swiglu(gate_up, t, l.down.k), t, l.down, nullptr, 0.0, none, true, xp);
  }
  return x;
}

at::Tensor decoder_layers(const at::Tensor& x, const c10::intrusive_ptr<LayerStack>& stack,
                          const at::Tensor& ck, const at::Tensor& cv, const at::Tensor& cos_in,
                          const at::Tensor& sin_in, int64_t pos, int64_t nh, int64_t nkv,
                          double scale, double eps) {
  check_input(x);
  const bool half = ck.scalar_type() == at::kHalf;
  TORCH_CHECK(ck.dim() == 4 && ck.size(0) == stack->size() && ck.sizes() == cv.sizes() &&
                  ck.is_contiguous() && cv.is_contiguous() &&
                  cv.scalar_type() == ck.scalar_type() &&
                  (half || ck.scalar_type() == at::kFloat) && ck.size(1) == nkv && nh % nkv == 0,
              "decoder_layers: contiguous float32 or half caches [layers, kv_heads, capacity, "
              "head_dim], one layer a stacked layer");
  const int64_t t = x.size(0), cap = ck.size(2), hd = ck.size(3);
  const LayerWeights& first = stack->layers[0];
  TORCH_CHECK(x.size(1) == first.qkv.k && first.qkv.n == (nh + 2 * nkv) * hd &&
                  first.o.k == nh * hd && pos + t <= cap,
              "decoder_layers: shapes do not fit");
  const at::Tensor cs = cos_in.contiguous(), sn = sin_in.contiguous();
  TORCH_CHECK(cs.scalar_type() == at::kFloat && sn.scalar_type() == at::kFloat &&
                  cs.size(0) == t && cs.size(1) == hd && sn.sizes() == cs.sizes(),
              "decoder_layers: cos/sin must be float [t, head_dim]");
  const float* c = cs.data_ptr<float>();
  const float* s = sn.data_ptr<float>();
  if (half) {
    return run_layers(x, *stack, reinterpret_cast<uint16_t*>(ck.data_ptr<at::Half>()),
                      reinterpret_cast<uint16_t*>(cv.data_ptr<at::Half>()), cap, hd, c, s, pos, nh,
                      nkv, scale, eps);
  }
  return run_layers(x, *stack, ck.data_ptr<float>(), cv.data_ptr<float>(), cap, hd, c, s, pos, nh,
                    nkv, scale, eps);
}

}  // namespace

TORCH_LIBRARY(wren, m) {
  m.def(
      "q4_linear(Tensor x, Tensor qs, Tensor d, Tensor m, Tensor? norm=None, float eps=0.0, "
      "Tensor? lora_a=None, Tensor? lora_b=None, Tensor? lora_ends=None, bool glu=False) -> Tensor");
  m.def("q8_linear(Tensor x, Tensor w, Tensor scale, Tensor? norm=None, float eps=0.0) -> Tensor");
  m.def(
      "attend_decode(Tensor qkv, Tensor(a!) ck, Tensor(b!) cv, Tensor cos, Tensor sin, int pos, "
      "int nh, int nkv, float scale) -> Tensor");
  m.class_<LayerStack>("LayerStack")
      .def(torch::init<std::vector<at::Tensor>>())
      .def("size", &LayerStack::size);
  m.def(
      "decoder_layers(Tensor x, __torch__.torch.classes.wren.LayerStack layers, Tensor(a!) ck, "
      "Tensor(b!) cv, Tensor cos, Tensor sin, int pos, int nh, int nkv, float scale, float eps) "
      "-> Tensor");
}

TORCH_LIBRARY_IMPL(wren, CPU, m) {
  m.impl("q4_linear", &q4_linear);
  m.impl("q8_linear", &q8_linear);
  m.impl("attend_decode", &attend_decode);
  m.impl("decoder_layers", &decoder_layers);
}
