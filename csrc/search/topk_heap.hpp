// Bounded selection of the best (score, id) pairs under a strict total
// order: better scores first (higher for Desc, lower otherwise), ties to the
// lower id. A binary heap keeps the worst kept pair on top, so an arriving
// score is compared with one threshold and only an entry does heap work.
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace pplx {

template <typename S, bool Desc>
inline bool better(S a, int64_t ia, S b, int64_t ib) {
  if (a != b) return Desc ? a > b : a < b;
  return ia < ib;
}

// One heap per query of a block of queries, each of capacity `cap`.
template <typename S, bool Desc>
struct HeapSet {
  size_t cap;
  std::vector<S> score;
  std::vector<int64_t> id;
  std::vector<size_t> size;

  HeapSet(size_t queries, size_t cap_) : cap(cap_), score(queries * cap_), id(queries * cap_), size(queries, 0) {}

  bool full(size_t a) const { return size[a] == cap; }
  S worst(size_t a) const { return score[a * cap]; }

  void push(size_t a, S v, int64_t i) {
    S* s = &score[a * cap];
    int64_t* d = &id[a * cap];
    size_t& n = size[a];
    if (n < cap) {  // sift up: parents better than v move down
      size_t pos = n++;
      while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!better<S, Desc>(s[parent], d[parent], v, i)) break;
        s[pos] = s[parent], d[pos] = d[parent];
        pos = parent;
      }
      s[pos] = v, d[pos] = i;
      return;
    }
    if (!better<S, Desc>(v, i, s[0], d[0])) return;
    size_t pos = 0;  // sift down: the worse child moves up while worse than v
    for (;;) {
      size_t c = 2 * pos + 1;
      if (c >= n) break;
      if (c + 1 < n && better<S, Desc>(s[c], d[c], s[c + 1], d[c + 1])) ++c;
      if (!better<S, Desc>(v, i, s[c], d[c])) break;
      s[pos] = s[c], d[pos] = d[c];
      pos = c;
    }
    s[pos] = v, d[pos] = i;
  }
};

// Appends query a's kept pairs to `into`.
template <typename S, bool Desc>
void collect(const HeapSet<S, Desc>& h, size_t a, std::vector<std::pair<S, int64_t>>& into) {
  for (size_t i = 0; i < h.size[a]; ++i) into.emplace_back(h.score[a * h.cap + i], h.id[a * h.cap + i]);
}

// Writes the best `k` of `all` in order to scores/ids; columns past the
// pairs available get `pad` and id -1.
template <typename S, bool Desc>
void write_best(std::vector<std::pair<S, int64_t>>& all, size_t k, S pad, S* scores, int64_t* ids) {
  size_t n = std::min(k, all.size());
  auto cmp = [](const std::pair<S, int64_t>& x, const std::pair<S, int64_t>& y) {
    return better<S, Desc>(x.first, x.second, y.first, y.second);
  };
  std::partial_sort(all.begin(), all.begin() + n, all.end(), cmp);
  for (size_t i = 0; i < n; ++i) scores[i] = all[i].first, ids[i] = all[i].second;
  for (size_t i = n; i < k; ++i) scores[i] = pad, ids[i] = -1;
}

}  // namespace pplx
