#include <algorithm>

#include "pplx/ops.h"
#include "pplx/parallel.h"

namespace pplx {

void for_row_blocks(size_t rows, size_t row_cost, size_t threads,
                    const std::function<void(size_t, size_t)>& body) {
  if (rows == 0) return;
  constexpr size_t kTaskElements = size_t(1) << 16;
  size_t rows_per_task = std::max<size_t>(1, kTaskElements / std::max<size_t>(1, row_cost));
  size_t n_tasks = (rows + rows_per_task - 1) / rows_per_task;
  parallel_for(n_tasks, threads, [&](size_t task) {
    size_t begin = task * rows_per_task;
    body(begin, std::min(rows, begin + rows_per_task));
  });
}

}  // namespace pplx
