// Top-k search: blocks of queries x chunks of database rows are the tasks;
// each running task offers its rows to the bounded heaps of the slot it
// borrows (one slot per thread that may run at once), and a final merge per
// query picks the best k of the slots' heaps. The order on (score, id) is
// strict and scores are exact, so the result is the same whatever the
// split, the thread count and the scheduling. Memory: threads x M x k
// pairs plus per-thread blocks, never M x N.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "pplx/dispatch.h"
#include "pplx/parallel.h"
#include "pplx/search.h"
#include "pplx/tuning.h"
#include "search/blocking.hpp"
#include "search/int8_rows.hpp"
#include "search/topk_heap.hpp"

namespace pplx {
namespace {

// Cosine: scores float32, higher is better.
struct CosineScan {
  using S = float;
  static constexpr bool kDesc = true;
  static constexpr S kPad = -std::numeric_limits<float>::infinity();

  const CosineKernels& k;
  I8Rows q, x;
  const float* x_norms;
  bool clamp;
  ArgNames names;
  const int8_t* qd;  // checked (possibly clamped) queries, stride q.stride
  std::vector<float> rq;

  struct Scratch {
    std::vector<int8_t> rows;
    std::vector<int32_t> dots;
    std::vector<float> rx;
  };

  size_t row_bytes() const { return x.dim; }

  size_t first(const S* s, size_t n, bool open, S worst) const {
    return open ? 0 : k.first_at_least(s, n, worst);
  }

  // Scores [nq, nr] of queries q0.. against rows at xr (ids: null for
  // consecutive rows from r0, else the rows' ids).
  void score(Scratch& w, size_t q0, size_t nq, const int8_t* xr, size_t nr, size_t stride,
             const int64_t* ids, size_t r0, S* out) const {
    w.dots.resize(nq * nr);
    if (k.dots_i8(qd + q0 * q.stride, nq, q.stride, xr, nr, stride, x.dim, w.dots.data(), nr)) {
      // A -128 in these rows: raise, or score a clamped copy.
      xr = checked_rows(k, xr, nr, &stride, x.dim, clamp, names.database, ids, r0, w.rows);
      k.dots_i8(qd + q0 * q.stride, nq, q.stride, xr, nr, stride, x.dim, w.dots.data(), nr);
    }
    w.rx.resize(nr);
    reciprocal_norms(k, xr, nr, stride, x.dim, x_norms, ids, r0, w.rx.data());
    for (size_t a = 0; a < nq; ++a)
      k.cos_scores(w.dots.data() + a * nr, w.rx.data(), rq[q0 + a], nr, out + a * nr);
  }
};

// Hamming: scores int32 distances, lower is better.
struct HammingScan {
  using S = int32_t;
  static constexpr bool kDesc = false;
  static constexpr S kPad = std::numeric_limits<int32_t>::max();

  const HammingKernels& k;
  U8Rows q, x;
  const uint8_t* qd;

  struct Scratch {};

  size_t row_bytes() const { return x.dim; }

  size_t first(const S* s, size_t n, bool open, S worst) const {
    return open ? 0 : k.first_at_most(s, n, worst);
  }

  void score(Scratch&, size_t q0, size_t nq, const uint8_t* xr, size_t nr, size_t stride,
             const int64_t*, size_t, S* out) const {
    k.hamming_u1(qd + q0 * q.stride, nq, q.stride, xr, nr, stride, x.dim, out, nr);
  }
};

// Offers scores[0, n) of query a (ids[i], or first_id + i) to its heap;
// with a mask (one byte per score), only where it is non-zero. The mask is
// read only for scores that pass the threshold, so it costs little.
template <class Scan>
void offer(const Scan& scan, HeapSet<typename Scan::S, Scan::kDesc>& h, size_t a,
           const typename Scan::S* scores, size_t n, const int64_t* ids, size_t first_id,
           const uint8_t* mask = nullptr) {
  size_t i = 0;
  while (i < n) {
    i += scan.first(scores + i, n - i, !h.full(a), h.full(a) ? h.worst(a) : scores[i]);
    if (i >= n) break;
    if (!mask || mask[i]) h.push(a, scores[i], ids ? ids[i] : int64_t(first_id + i));
    ++i;
  }
}

// True when no row of mask[0, n) may be returned: the block is not scored.
bool none_allowed(const uint8_t* mask, size_t n) {
  return mask && std::all_of(mask, mask + n, [](uint8_t v) { return v == 0; });
}

// Database rows per task: the scan_chunk_bytes knob, in whole row blocks,
// but small enough that the call has at least 4 tasks per core the machine
// has: a few large chunks leave a core idle through the last one (200,000
// x 128-byte codes in 16 MB chunks: two tasks of 131,040 and 68,960 rows).
// The chunks depend on the problem, the knob and the machine only; any
// split gives the same result, since every chunk's rows are offered to some
// heap and the merge is exact.
size_t chunk_rows(size_t row_bytes, size_t rb, size_t n_rows, size_t n_query_blocks) {
  const size_t knob_blocks = knob(Knob::scan_chunk_bytes) / std::max<size_t>(1, rb * row_bytes);
  const size_t min_chunks = ceil_div(4 * max_threads(), n_query_blocks);
  const size_t balanced_blocks = ceil_div(ceil_div(n_rows, rb), min_chunks);
  return std::max<size_t>(1, std::min(knob_blocks, balanced_blocks)) * rb;
}

// row_mask (may be null): one byte per database row, non-zero where the row
// may be returned; the others are scanned past, never offered.
template <class Scan>
void topk_dense(const Scan& scan, size_t k, const uint8_t* row_mask, typename Scan::S* out_s,
                int64_t* out_id, size_t threads) {
  using S = typename Scan::S;
  using Heaps = HeapSet<S, Scan::kDesc>;
  const size_t M = scan.q.rows, N = scan.x.rows;
  const size_t qb = query_block(scan.row_bytes());
  // The block of scores (queries x rows) stays within about 128 KB of L2.
  size_t rb = row_block(scan.row_bytes());
  while (rb > 16 && rb * std::min(qb, M) > 32768) rb /= 2;
  // Score rows 2 KB long (512 rows) would put the 16 query rows a packed
  // tile writes at once into two L1 sets: 480 spreads them (Zen 4, Hamming
  // M=16 with queries packed: 700 -> 826 M pairs/s per core).
  if (rb * sizeof(S) % 2048 == 0) rb -= 32;
  const size_t n_qb = ceil_div(M, qb);
  const size_t chunk = chunk_rows(scan.row_bytes(), rb, N, n_qb);
  const size_t n_chunks = std::max<size_t>(1, ceil_div(N, chunk));
  const size_t units = n_qb * n_chunks;
  // One task per unit (a chunk of rows x a block of queries), so a helper
  // can move to another concurrent call between any two units. A task
  // offers its rows to the heaps of the slot it borrows: heaps[s][b] for
  // query block b, made when first needed.
  const size_t n_slots = max_concurrency(units, threads);
  struct Slot {
    std::vector<std::unique_ptr<Heaps>> heaps;
    typename Scan::Scratch scratch;
    std::vector<S> buf;
  };
  std::vector<Slot> slots(n_slots);
  for (Slot& slot : slots) slot.heaps.resize(n_qb);
  Slots free_slots(n_slots);
  parallel_for(units, threads, [&](size_t u) {
    SlotLease lease(free_slots);
    Slot& slot = slots[lease.index];
    size_t c = u / n_qb, b = u % n_qb;  // chunk-major: neighbours share rows
    size_t q0 = b * qb, nq = std::min(qb, M - q0);
    if (!slot.heaps[b]) slot.heaps[b].reset(new Heaps(nq, k));
    Heaps& h = *slot.heaps[b];
    const size_t r1 = std::min(N, (c + 1) * chunk);
    // No cancelled() poll per block: Ctrl-C stops the call between tasks.
    for (size_t r = c * chunk; r < r1; r += rb) {
      size_t nr = std::min(rb, r1 - r);
      const uint8_t* mask = row_mask ? row_mask + r : nullptr;
      if (none_allowed(mask, nr)) continue;
      slot.buf.resize(nq * nr);
      scan.score(slot.scratch, q0, nq, scan.x.data + r * scan.x.stride, nr, scan.x.stride, nullptr,
                 r, slot.buf.data());
      for (size_t a = 0; a < nq; ++a) offer(scan, h, a, slot.buf.data() + a * nr, nr, nullptr, r, mask);
    }
  });
  parallel_for(n_qb, threads, [&](size_t b) {
    std::vector<std::pair<S, int64_t>> all;
    size_t q0 = b * qb, nq = std::min(qb, M - q0);
    for (size_t a = 0; a < nq; ++a) {
      all.clear();
      for (const Slot& slot : slots)
        if (slot.heaps[b]) collect(*slot.heaps[b], a, all);
      write_best<S, Scan::kDesc>(all, k, Scan::kPad, out_s + (q0 + a) * k, out_id + (q0 + a) * k);
    }
  });
}

// Candidate form: query m is scored against its own candidate rows only
// (-1 skipped, duplicates once), in blocks of gathered rows.
template <class Scan, typename T>
void topk_candidates(const Scan& scan, const T* xdata, size_t k, const int64_t* cand,
                     size_t n_cand, typename Scan::S* out_s, int64_t* out_id, size_t threads) {
  using S = typename Scan::S;
  const size_t M = scan.q.rows, D = scan.x.dim;
  const size_t rb = row_block(scan.row_bytes());
  parallel_for(M, threads, [&](size_t m) {
    thread_local typename Scan::Scratch scratch;
    thread_local std::vector<int64_t> ids;
    thread_local std::vector<T> rows;
    thread_local std::vector<S> buf;
    ids.clear();
    for (size_t c = 0; c < n_cand; ++c)
      if (cand[m * n_cand + c] >= 0) ids.push_back(cand[m * n_cand + c]);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    HeapSet<S, Scan::kDesc> h(1, std::max<size_t>(1, std::min(k, ids.size())));
    for (size_t i0 = 0; i0 < ids.size(); i0 += rb) {
      size_t n = std::min(rb, ids.size() - i0);
      rows.resize(n * D);
      for (size_t i = 0; i < n; ++i)
        std::copy_n(xdata + size_t(ids[i0 + i]) * scan.x.stride, D, rows.data() + i * D);
      buf.resize(n);
      scan.score(scratch, m, 1, rows.data(), n, D, ids.data() + i0, 0, buf.data());
      offer(scan, h, 0, buf.data(), n, ids.data() + i0, 0);
    }
    std::vector<std::pair<S, int64_t>> all;
    collect(h, 0, all);
    write_best<S, Scan::kDesc>(all, k, Scan::kPad, out_s + m * k, out_id + m * k);
  });
}

}  // namespace

void topk_cosine(I8Rows q, I8Rows x, const float* x_norms, size_t k, const int64_t* candidates,
                 size_t n_cand, const uint8_t* row_mask, bool clamp, float* scores, int64_t* ids,
                 size_t threads, ArgNames names) {
  if (q.rows == 0 || k == 0) return;
  const CosineKernels& kern = kernels().cosine;
  std::vector<int8_t> q_copy;
  CosineScan scan{kern, q, x, x_norms, clamp, names, nullptr, {}};
  scan.qd = checked_rows(kern, q.data, q.rows, &scan.q.stride, q.dim, clamp, names.queries,
                         nullptr, 0, q_copy);
  scan.rq.resize(q.rows);
  reciprocal_norms(kern, scan.qd, q.rows, scan.q.stride, q.dim, nullptr, nullptr, 0, scan.rq.data());
  if (candidates)
    topk_candidates(scan, x.data, k, candidates, n_cand, scores, ids, threads);
  else
    topk_dense(scan, k, row_mask, scores, ids, threads);
}

void topk_hamming(U8Rows q, U8Rows x, size_t k, const int64_t* candidates, size_t n_cand,
                  const uint8_t* row_mask, int32_t* scores, int64_t* ids, size_t threads) {
  if (q.rows == 0 || k == 0) return;
  HammingScan scan{kernels().hamming, q, x, q.data};
  if (candidates)
    topk_candidates(scan, x.data, k, candidates, n_cand, scores, ids, threads);
  else
    topk_dense(scan, k, row_mask, scores, ids, threads);
}

}  // namespace pplx
