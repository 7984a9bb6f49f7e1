// The main of the in-process unit tests: GoogleTest's, with Abseil's mutex deadlock detection
// switched to abort. Release builds of Abseil (NDEBUG) leave it off, so without this a lock-order
// inversion (a potential deadlock) between the components under test would go unnoticed.
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kAbort);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
