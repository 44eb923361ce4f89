// Shared vocabulary of the kernel API.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pplx {

// Order of the bits inside each packed byte. Big: element 0 is the most
// significant bit (numpy's default, sentence-transformers "ubinary", the
// pplx ONNX recipe). Little: element 0 is the least significant bit (the
// Perplexity API's base64_binary).
enum class BitOrder : int { big = 0, little = 1 };

// Instruction-set levels, lowest first. A level is usable when the CPU has
// it and the OS saves its registers (XCR0).
enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2, neon = 3 };

inline size_t packed_bytes(size_t dim) { return (dim + 7) / 8; }

}  // namespace pplx
