// Full score matrices (cosine, Hamming) and int8 norms: blocks of queries x
// blocks of rows, one task per pair.
#include <algorithm>
#include <vector>

#include "pplx/dispatch.h"
#include "pplx/parallel.h"
#include "pplx/search.h"
#include "search/blocking.hpp"
#include "search/int8_rows.hpp"

namespace pplx {

void cosine_matrix(I8Rows q, I8Rows x, const float* x_norms, bool clamp, float* out,
                   size_t threads, ArgNames names) {
  if (q.rows == 0 || x.rows == 0) return;
  const CosineKernels& k = kernels().cosine;
  std::vector<int8_t> q_copy;
  const int8_t* qd = checked_rows(k, q.data, q.rows, &q.stride, q.dim, clamp, names.queries, nullptr, 0, q_copy);
  std::vector<float> rq(q.rows);
  reciprocal_norms(k, qd, q.rows, q.stride, q.dim, nullptr, nullptr, 0, rq.data());

  size_t rb = row_block(x.dim), qb = query_block(x.dim);
  size_t n_rb = ceil_div(x.rows, rb), n_qb = ceil_div(q.rows, qb);
  parallel_for(n_rb * n_qb, threads, [&](size_t task) {
    size_t r0 = (task / n_qb) * rb, q0 = (task % n_qb) * qb;
    size_t nr = std::min(rb, x.rows - r0), nq = std::min(qb, q.rows - q0);
    thread_local std::vector<int8_t> scratch;
    thread_local std::vector<int32_t> dots;
    thread_local std::vector<float> rx;
    size_t stride = x.stride;
    const int8_t* xd = x.data + r0 * x.stride;
    dots.resize(nq * nr);
    if (k.dots_i8(qd + q0 * q.stride, nq, q.stride, xd, nr, stride, x.dim, dots.data(), nr)) {
      // A -128 in these rows: raise, or score a clamped copy.
      xd = checked_rows(k, xd, nr, &stride, x.dim, clamp, names.database, nullptr, r0, scratch);
      k.dots_i8(qd + q0 * q.stride, nq, q.stride, xd, nr, stride, x.dim, dots.data(), nr);
    }
    rx.resize(nr);
    reciprocal_norms(k, xd, nr, stride, x.dim, x_norms, nullptr, r0, rx.data());
    for (size_t a = 0; a < nq; ++a)
      k.cos_scores(dots.data() + a * nr, rx.data(), rq[q0 + a], nr, out + (q0 + a) * x.rows + r0);
  });
}

void hamming_matrix(U8Rows q, U8Rows x, int32_t* out, size_t threads) {
  if (q.rows == 0 || x.rows == 0) return;
  const HammingKernels& k = kernels().hamming;
  size_t rb = row_block(x.dim), qb = query_block(x.dim);
  size_t n_rb = ceil_div(x.rows, rb), n_qb = ceil_div(q.rows, qb);
  parallel_for(n_rb * n_qb, threads, [&](size_t task) {
    size_t r0 = (task / n_qb) * rb, q0 = (task % n_qb) * qb;
    size_t nr = std::min(rb, x.rows - r0), nq = std::min(qb, q.rows - q0);
    k.hamming_u1(q.data + q0 * q.stride, nq, q.stride, x.data + r0 * x.stride, nr, x.stride,
                 x.dim, out + q0 * x.rows + r0, x.rows);
  });
}

void norms_i8(I8Rows x, bool clamp, float* out, size_t threads, const char* name) {
  const CosineKernels& k = kernels().cosine;
  size_t rb = row_block(x.dim);
  parallel_for(ceil_div(x.rows, rb), threads, [&](size_t task) {
    size_t r0 = task * rb, nr = std::min(rb, x.rows - r0);
    thread_local std::vector<int8_t> scratch;
    size_t stride = x.stride;
    const int8_t* xd = checked_rows(k, x.data + r0 * x.stride, nr, &stride, x.dim, clamp, name, nullptr, r0, scratch);
    for (size_t i = 0; i < nr; ++i) out[r0 + i] = norm_from_sumsq(k.sumsq_i8(xd + i * stride, x.dim));
  });
}

}  // namespace pplx
