#include "tests/common/health_probe.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.pb.h"

namespace sag::testing {

absl::StatusOr<int> ProbeHealth(const std::string& address, const std::string& service,
                                absl::Duration timeout) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // A connection of its own, as a kubelet.
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::Slice slice(request.SerializeAsString());
  grpc::ByteBuffer in(&slice, 1), out;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::GenericStub generic(channel);
  absl::Notification done;
  grpc::Status status;
  generic.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &in, &out,
                    [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  // The deadline bounds the call; the extra time only guards against a lost callback.
  if (!done.WaitForNotificationWithTimeout(timeout + absl::Seconds(5))) {
    context.TryCancel();
    done.WaitForNotification();
    return absl::DeadlineExceededError("health check callback never ran");
  }
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (out.Dump(&slices).ok()) {
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  grpc::health::v1::HealthCheckResponse response;
  if (!response.ParseFromString(bytes)) return absl::InternalError("bad HealthCheckResponse");
  return static_cast<int>(response.status());
}

HealthProber::HealthProber(std::string address, absl::Duration period, absl::Duration timeout)
    : address_(std::move(address)), period_(period), timeout_(timeout) {
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      const absl::Time start = absl::Now();
      absl::StatusOr<int> status = ProbeHealth(address_, "", timeout_);
      const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
      {
        absl::MutexLock lock(&mu_);
        result_.latency_ms.push_back(ms);
        if (status.ok() && *status == 1) {
          ++result_.serving;
        } else {
          ++result_.failed;
          if (result_.first_error.empty()) {
            result_.first_error = status.ok() ? absl::StrCat("status ", *status)
                                              : std::string(status.status().ToString());
          }
        }
      }
      absl::SleepFor(period_ - (absl::Now() - start));
    }
  });
}

HealthProber::Result HealthProber::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  return result_;
}

}  // namespace sag::testing
