// The bytes of a grpc::ByteBuffer as one string, for the benchmarks that send and check raw
// gRPC messages (bench_cache, bench_hits, bench-floor-gateway).
#ifndef SAG_TESTS_BENCH_BYTE_BUFFER_H_
#define SAG_TESTS_BENCH_BYTE_BUFFER_H_

#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <vector>

namespace sag::bench {

// The buffer's bytes; "" when it cannot be read.
inline std::string BufferBytes(const grpc::ByteBuffer& buffer) {
  std::string raw;
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return raw;
  raw.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) {
    raw.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return raw;
}

}  // namespace sag::bench

#endif  // SAG_TESTS_BENCH_BYTE_BUFFER_H_
