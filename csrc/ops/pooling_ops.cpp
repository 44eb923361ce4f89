// Row loops of mean pooling. Short batches with wide rows are also split by
// column blocks so both cores work; columns are independent, so the split
// never changes a result. Batches of kWholeRowsBatch or more go by whole
// sequences: a task then reads each token row front to back (one stream the
// hardware prefetcher follows), where column blocks read 1 KB pieces of
// every row at the row stride.
#include <algorithm>

#include "pplx/dispatch.h"
#include "pplx/ops.h"
#include "pplx/parallel.h"

namespace pplx {
namespace {

constexpr size_t kColumnBlock = 256;
constexpr size_t kWholeRowsBatch = 16;

void pool_rows(const PoolingKernels& k, const void* base, bool f16, size_t offset, size_t n_rows,
               size_t stride_s, size_t dim, const uint8_t* mask, float* out) {
  if (f16)
    k.mean_pool_f16(static_cast<const uint16_t*>(base) + offset, n_rows, stride_s, dim, mask, out);
  else
    k.mean_pool_f32(static_cast<const float*>(base) + offset, n_rows, stride_s, dim, mask, out);
}

}  // namespace

void mean_pool_batch(const void* hidden, bool f16, size_t batch, size_t seq, size_t dim,
                     size_t stride_b, size_t stride_s, const uint8_t* mask, float* out,
                     size_t threads) {
  const PoolingKernels& k = kernels().pooling;
  const size_t block = batch >= kWholeRowsBatch ? dim : kColumnBlock;
  size_t col_blocks = dim == 0 ? 0 : (dim + block - 1) / block;
  if (col_blocks == 0) return;
  parallel_for(batch * col_blocks, threads, [&](size_t task) {
    size_t b = task / col_blocks, h0 = (task % col_blocks) * block;
    size_t width = std::min(block, dim - h0);
    pool_rows(k, hidden, f16, b * stride_b + h0, seq, stride_s, width,
              mask ? mask + b * seq : nullptr, out + b * dim + h0);
  });
}

void mean_pool_spans(const void* hidden, bool f16, size_t dim, size_t stride_s,
                     const int64_t* spans, size_t n_spans, float* out, size_t threads) {
  const PoolingKernels& k = kernels().pooling;
  size_t col_blocks = (dim + kColumnBlock - 1) / kColumnBlock;
  if (col_blocks == 0) return;
  parallel_for(n_spans * col_blocks, threads, [&](size_t task) {
    size_t i = task / col_blocks, h0 = (task % col_blocks) * kColumnBlock;
    size_t width = std::min(kColumnBlock, dim - h0);
    size_t start = size_t(spans[2 * i]), end = size_t(spans[2 * i + 1]);
    pool_rows(k, hidden, f16, start * stride_s + h0, end - start, stride_s, width, nullptr,
              out + i * dim + h0);
  });
}

}  // namespace pplx
