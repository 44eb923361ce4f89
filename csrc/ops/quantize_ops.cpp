// Row loops of quantization and bit packing. Each task remembers the first
// row it found holding NaN or Inf; the smallest wins, whatever the threads.
#include <algorithm>
#include <atomic>

#include "pplx/dispatch.h"
#include "pplx/ops.h"

namespace pplx {
namespace {

// Runs ok = row_fn(r) over all rows; returns the first row where it was false.
template <typename RowFn>
int64_t first_bad_row(size_t rows, size_t dim, size_t threads, RowFn row_fn) {
  std::atomic<int64_t> first{-1};
  for_row_blocks(rows, dim, threads, [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      if (row_fn(r)) continue;
      int64_t seen = first.load();
      while ((seen < 0 || int64_t(r) < seen) && !first.compare_exchange_weak(seen, int64_t(r))) {
      }
      return;
    }
  });
  return first.load();
}

}  // namespace

int64_t quantize_i8_batch(Int8Scheme scheme, const float* x, size_t rows, size_t dim,
                          size_t stride, int8_t* codes, uint8_t* bits, BitOrder order,
                          size_t threads) {
  const QuantizeKernels& k = kernels().quantize;
  QuantizeI8Fn fn = scheme == Int8Scheme::tanh ? k.tanh_i8 : k.absmax_i8;
  const size_t nbytes = packed_bytes(dim);
  return first_bad_row(rows, dim, threads, [&](size_t r) {
    return fn(x + r * stride, dim, codes + r * dim, bits ? bits + r * nbytes : nullptr, order);
  });
}

int64_t sign_i8_batch(const float* x, size_t rows, size_t dim, size_t stride, int8_t* codes,
                      size_t threads) {
  SignI8Fn fn = kernels().quantize.sign_i8;
  return first_bad_row(rows, dim, threads,
                       [&](size_t r) { return fn(x + r * stride, dim, codes + r * dim); });
}

int64_t pack_f32_batch(const float* x, size_t rows, size_t dim, size_t stride, uint8_t* bits,
                       BitOrder order, size_t threads) {
  PackF32Fn fn = kernels().bitpack.pack_f32;
  const size_t nbytes = packed_bytes(dim);
  return first_bad_row(rows, dim, threads, [&](size_t r) {
    return fn(x + r * stride, dim, bits + r * nbytes, order);
  });
}

namespace {

// Packs every row of x with kernel fn (no row can fail).
template <typename T, typename Fn>
void pack_rows(Fn fn, const T* x, size_t rows, size_t dim, size_t stride, uint8_t* bits,
               BitOrder order, size_t threads) {
  const size_t nbytes = packed_bytes(dim);
  for_row_blocks(rows, dim, threads, [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) fn(x + r * stride, dim, bits + r * nbytes, order);
  });
}

}  // namespace

void pack_i8_batch(const int8_t* x, size_t rows, size_t dim, size_t stride, uint8_t* bits,
                   BitOrder order, size_t threads) {
  pack_rows(kernels().bitpack.pack_i8, x, rows, dim, stride, bits, order, threads);
}

void pack_bool_batch(const uint8_t* x, size_t rows, size_t dim, size_t stride, uint8_t* bits,
                     BitOrder order, size_t threads) {
  pack_rows(kernels().bitpack.pack_bool, x, rows, dim, stride, bits, order, threads);
}

void unpack_batch(const uint8_t* bits, size_t rows, size_t dim, size_t stride, int8_t* out,
                  BitOrder order, bool signed_values, size_t threads) {
  UnpackFn fn = kernels().bitpack.unpack;
  for_row_blocks(rows, dim, threads, [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) fn(bits + r * stride, dim, out + r * dim, order, signed_values);
  });
}

}  // namespace pplx
