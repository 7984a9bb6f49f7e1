// Example: every audience of a space, with segment_audiences_client.
//
//   segment_audiences_example SPACE_ID [HOST:PORT]
//
// Walks every page of ListAudiences (ListAllAudiences follows pagination.next), prints one line
// per audience, then the schedules of the LINKED ones. The address defaults to
// $AUDIENCES_GATEWAY_ADDR, else localhost:50051. Exit code 0, or 1 on an error (printed with
// its google.rpc details).
//
// Build against the installed package:
//   find_package(SegmentAudiencesClient REQUIRED)
//   target_link_libraries(example PRIVATE SegmentAudiences::client)
#include <iostream>
#include <string>

#include "segment_audiences/client.h"

namespace v1 = segment::audiences::v1;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " SPACE_ID [HOST:PORT]\n";
    return 1;
  }
  segment_audiences::ClientOptions options;
  if (argc > 2) options.address = argv[2];  // Else $AUDIENCES_GATEWAY_ADDR or localhost:50051.
  options.timeout = absl::Seconds(10);      // Per call, retries of reads included.
  segment_audiences::Client client(options);

  v1::ListAudiencesRequest list;
  list.set_space_id(argv[1]);
  list.mutable_pagination()->set_count(100);  // Page size; every page is read.
  auto audiences = client.ListAllAudiences(list);
  if (!audiences.ok()) {
    std::cerr << segment_audiences::FormatError(audiences.status());
    return 1;
  }
  std::cout << audiences->size() << " audiences\n";
  for (const auto& audience : *audiences) {
    std::cout << audience.id() << "  " << audience.name() << "  "
              << v1::AudienceType_Name(audience.audience_type()) << "\n";
    if (audience.audience_type() != v1::AUDIENCE_TYPE_LINKED) continue;
    v1::ListAudienceSchedulesFromSpaceAndAudienceRequest schedules;
    schedules.set_space_id(argv[1]);
    schedules.set_id(audience.id());
    auto listed = client.ListAllAudienceSchedules(schedules);
    if (!listed.ok()) {
      std::cerr << segment_audiences::FormatError(listed.status());
      return 1;
    }
    for (const auto& schedule : *listed) {
      std::cout << "  schedule " << schedule.id() << "  "
                << v1::ScheduleStrategy_Name(schedule.strategy()) << "\n";
    }
  }
  return 0;
}
