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
#include <torch/library.h>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

namespace {

constexpr int64_t QK = 32;    // block of inputs sharing one scale (weights and activations)
constexpr int64_t TILE = 16;  // output rows per parallel task

// Each 32-block of each row of x: int8 values, their scale, and the float sum of the block
// (the Q4_1 zero point multiplies the plain sum of the activations).
template <typename T, int QMAX>
void quantize_rows(const float* x, int64_t m, int64_t k, T* xq, float* xd, float* xs) {
  const int64_t nb = k / QK;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* src = x + r * k + b * QK;
      float amax = 0.f;
      float sum = 0.f;
      for (int64_t i = 0; i < QK; ++i) {
        amax = std::max(amax, std::fabs(src[i]));
        sum += src[i];
      }
      const float d = amax / static_cast<float>(QMAX);
      const float id = d > 0.f ? 1.f / d : 0.f;
      T* dst = xq + r * k + b * QK;
      for (int64_t i = 0; i < QK; ++i) {
        dst[i] = static_cast<T>(std::nearbyint(src[i] * id));
      }
      xd[r * nb + b] = d;
      xs[r * nb + b] = sum;
    }
  }
}

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// X input rows times R output rows of 4-bit weights. Row layout: for each block of 32 inputs,
// 16 bytes where byte j holds q[j] (low nibble) and q[j + 16] (high nibble); the block's scale
// d and minimum m are halves in separate [rows, blocks] arrays, so w = q * d + m.
//
// Per (input row, output row) pair the work is always the same sequence: the block scales
// d * dx (8 at a time, then one by one), the zero-point term sum(m * sum(x)) likewise, then
// one fused multiply-add per block in block order. The microkernel shape (X, R) only decides
// how many pairs share a weight unpack or an input load.
template <int X, int R>
inline void q4_tile(const uint8_t* qs, const uint16_t* dw, const uint16_t* mw, int64_t row_bytes,
                    int64_t nb, const int16_t* xq, const float* xd, const float* xs, int64_t k,
                    float* sc, float* out, int64_t out_stride) {
  const __m128i mask = _mm_set1_epi8(0x0F);
  __m256 acc[X][R];
  float mterm[X][R];
  for (int i = 0; i < X; ++i) {
    for (int r = 0; r < R; ++r) {
      const uint16_t* d = dw + r * nb;
      const uint16_t* mm = mw + r * nb;
      const float* dx = xd + i * nb;
      const float* sx = xs + i * nb;
      float* s = sc + (i * R + r) * nb;
      __m256 mv = _mm256_setzero_ps();
      int64_t b = 0;
      for (; b + 8 <= nb; b += 8) {
        const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + b)));
        _mm256_storeu_ps(s + b, _mm256_mul_ps(dv, _mm256_loadu_ps(dx + b)));
        const __m256 m8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mm + b)));
        mv = _mm256_fmadd_ps(m8, _mm256_loadu_ps(sx + b), mv);
      }
      float mt = hsum(mv);
      for (; b < nb; ++b) {
        s[b] = _cvtsh_ss(d[b]) * dx[b];
        mt += _cvtsh_ss(mm[b]) * sx[b];
      }
      mterm[i][r] = mt;
      acc[i][r] = _mm256_setzero_ps();
    }
  }
  for (int64_t b = 0; b < nb; ++b) {
    for (int r = 0; r < R; ++r) {
      const __m128i raw =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + r * row_bytes + b * 16));
      const __m256i lo = _mm256_cvtepu8_epi16(_mm_and_si128(raw, mask));
      const __m256i hi = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), mask));
      for (int i = 0; i < X; ++i) {
        const int16_t* y = xq + i * k + b * QK;
        const __m256i y0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y));
        const __m256i y1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + 16));
        const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(lo, y0), _mm256_madd_epi16(hi, y1));
        acc[i][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + (i * R + r) * nb + b),
                                    _mm256_cvtepi32_ps(p), acc[i][r]);
      }
    }
  }
  for (int i = 0; i < X; ++i) {
    for (int r = 0; r < R; ++r) out[i * out_stride + r] = hsum(acc[i][r]) + mterm[i][r];
  }
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

struct Quantized {
  at::Tensor xq, xd, xs;
};

// Quantize x to T per block of 32 (int8 for the 8-bit head, int16 for the 4-bit layers, whose
// accuracy int8 activations cost: 94.4 vs 97.8 % greedy agreement with fp32), or
// RMSNorm(x) * norm first when `norm` is given (the layer norm that precedes every matmul of
// the decoder, fused here to save a pass and a call).
template <typename T, int QMAX>
Quantized quantize(const at::Tensor& x, const std::optional<at::Tensor>& norm, double eps) {
  const int64_t m = x.size(0), k = x.size(1), nb = k / QK;
  const auto qtype = sizeof(T) == 1 ? at::kChar : at::kShort;
  Quantized q{at::empty({m, k}, x.options().dtype(qtype)), at::empty({m, nb}, x.options()),
              at::empty({m, nb}, x.options())};
  const float* src = x.data_ptr<float>();
  at::Tensor normed;
  if (norm.has_value() && norm->defined()) {
    const at::Tensor w = norm->contiguous();
    TORCH_CHECK(w.scalar_type() == at::kFloat && w.numel() == k, "norm weight must be float [in]");
    normed = at::empty({m, k}, x.options());
    const float* wp = w.data_ptr<float>();
    float* dst = normed.data_ptr<float>();
    for (int64_t r = 0; r < m; ++r) {
      const float* row = src + r * k;
      double ss = 0.0;
      for (int64_t i = 0; i < k; ++i) ss += static_cast<double>(row[i]) * row[i];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(k) + eps));
      for (int64_t i = 0; i < k; ++i) dst[r * k + i] = row[i] * inv * wp[i];
    }
    src = dst;
  }
  quantize_rows<T, QMAX>(src, m, k, static_cast<T*>(q.xq.data_ptr()), q.xd.data_ptr<float>(),
                         q.xs.data_ptr<float>());
  return q;
}

void check_input(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2,
              "wren kernels take a 2-D float32 CPU tensor");
  TORCH_CHECK(x.size(1) % QK == 0, "input size must be a multiple of 32");
}

// y[m, n] = x[m, k] @ W.T for 4-bit W given as qs [n, k/2] (uint8), d and m [n, k/32] (half).
at::Tensor q4_linear(const at::Tensor& x_in, const at::Tensor& qs, const at::Tensor& dw,
                     const at::Tensor& mw, const std::optional<at::Tensor>& norm, double eps) {
  check_input(x_in);
  const at::Tensor x = x_in.contiguous();
  const int64_t m = x.size(0), k = x.size(1), n = qs.size(0), nb = k / QK;
  TORCH_CHECK(qs.scalar_type() == at::kByte && qs.is_contiguous() && qs.size(1) * 2 == k,
              "q4 weights must be uint8 [out, in/2]");
  TORCH_CHECK(dw.scalar_type() == at::kHalf && dw.is_contiguous() && dw.numel() == n * nb &&
                  mw.scalar_type() == at::kHalf && mw.is_contiguous() && mw.numel() == n * nb,
              "q4 scales and minimums must be half [out, in/32]");
  const Quantized q = quantize<int16_t, 32767>(x, norm, eps);
  at::Tensor out = at::empty({m, n}, x.options());
  const uint8_t* qp = qs.data_ptr<uint8_t>();
  const uint16_t* dp = reinterpret_cast<const uint16_t*>(dw.data_ptr<at::Half>());
  const uint16_t* mp = reinterpret_cast<const uint16_t*>(mw.data_ptr<at::Half>());
  const int16_t* xq = q.xq.data_ptr<int16_t>();
  const float* xd = q.xd.data_ptr<float>();
  const float* xs = q.xs.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t rb = k / 2;
  at::parallel_for(0, (n + TILE - 1) / TILE, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> sc(static_cast<size_t>(2 * 4 * nb));
    float* s = sc.data();
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * TILE, r1 = std::min(n, r0 + TILE);
      int64_t i = 0;
      for (; i + 2 <= m; i += 2) {
        const int64_t xo = i * k, bo = i * nb;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
          q4_tile<2, 4>(qp + r * rb, dp + r * nb, mp + r * nb, rb, nb, xq + xo, xd + bo, xs + bo,
                        k, s, op + i * n + r, n);
        }
        for (; r < r1; ++r) {
          q4_tile<2, 1>(qp + r * rb, dp + r * nb, mp + r * nb, rb, nb, xq + xo, xd + bo, xs + bo,
                        k, s, op + i * n + r, n);
        }
      }
      for (; i < m; ++i) {
        const int64_t xo = i * k, bo = i * nb;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
          q4_tile<1, 4>(qp + r * rb, dp + r * nb, mp + r * nb, rb, nb, xq + xo, xd + bo, xs + bo,
                        k, s, op + i * n + r, n);
        }
        for (; r < r1; ++r) {
          q4_tile<1, 1>(qp + r * rb, dp + r * nb, mp + r * nb, rb, nb, xq + xo, xd + bo, xs + bo,
                        k, s, op + i * n + r, n);
        }
      }
    }
  });
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
  const Quantized q = quantize<int8_t, 127>(x, norm, eps);
  at::Tensor out = at::empty({m, n}, x.options());
  const int8_t* wp = w.data_ptr<int8_t>();
  const float* sp = scale.contiguous().data_ptr<float>();
  const int8_t* xq = q.xq.data_ptr<int8_t>();
  const float* xd = q.xd.data_ptr<float>();
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

}  // namespace

TORCH_LIBRARY(wren, m) {
  m.def("q4_linear(Tensor x, Tensor qs, Tensor d, Tensor m, Tensor? norm=None, float eps=0.0) -> Tensor");
  m.def("q8_linear(Tensor x, Tensor w, Tensor scale, Tensor? norm=None, float eps=0.0) -> Tensor");
}

TORCH_LIBRARY_IMPL(wren, CPU, m) {
  m.impl("q4_linear", &q4_linear);
  m.impl("q8_linear", &q8_linear);
}
