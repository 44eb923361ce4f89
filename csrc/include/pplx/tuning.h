// Speed-only knobs of the search kernels. Every value a knob may take gives
// bit-identical results (tests run each against the scalar reference); they
// differ only in speed, which depends on the CPU. Defaults come from a small
// table by vendor and microarchitecture; pplx_kernels.tune() measures the
// candidates on this machine and sets the fastest (python/pplx_kernels/tune.py).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pplx {

enum class Knob : int {
  // Software prefetch distance of the one-query row scans, in bytes ahead
  // of the rows being read (0: hardware prefetch only).
  cosine_prefetch = 0,
  hamming_prefetch,
  // Query count from which the packed (rows repacked, GEMM-like) microkernels
  // run instead of the row-wise ones.
  cosine_packed_min_queries,
  hamming_packed_min_queries,
  // AVX2 row-wise Hamming: scalar POPCNT for codes up to this many bytes,
  // pshufb nibble lookup above.
  hamming_popcnt_max_bytes,
  // AVX-512 Hamming, packed regime: below this query count the queries are
  // packed and the codes read in place; from it on, the codes are packed.
  hamming_code_packing_min_queries,
  // One query: 0 = 1 x 4 row tiles, 1 = rows one at a time in memory order.
  cosine_row_order,
  hamming_row_order,
  // Dense top-k scans: database rows per task, in bytes (rounded to whole
  // row blocks), at most: a scan is cut into at least 4 tasks per core.
  // Smaller tasks balance threads and concurrent calls more finely; larger
  // ones cost fewer hand-offs.
  scan_chunk_bytes,
  // AVX-512 Hamming, queries packed: software prefetch distance in bytes
  // ahead of each tile of 8 codes read in place (0: hardware prefetch only).
  hamming_qpacked_prefetch,
  // AVX2 Hamming, packed regime: 1 = while a block of codes is scored, its
  // successor in memory is prefetched into L2 (the packing of the next
  // block reads from L2 instead of waiting on memory); 0 = not.
  hamming_packed_next_prefetch,
  count,
};

struct KnobInfo {
  const char* name;
  std::vector<uint32_t> candidates;  // the values the tuner tries
};

// Name and candidates of every knob, in Knob order.
const std::vector<KnobInfo>& knob_infos();
// Relaxed atomic reads and writes: a scan running while a knob changes sees
// the old or the new value, both exact.
uint32_t knob(Knob k);
void set_knob(Knob k, uint32_t value);
// Restores the defaults of this CPU (the vendor/microarchitecture table).
void reset_knobs();
// The defaults table's row for this CPU, in Knob order.
std::vector<uint32_t> default_knobs();
// "zen4", "intel-avx512", ...: the row of the defaults table used here.
std::string cpu_family_name();

}  // namespace pplx
