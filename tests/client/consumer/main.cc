// A consumer of the installed SegmentAudiences::client: creates an audience, lists every page,
// and reads a NOT_FOUND with its details.
//   consumer HOST:PORT SPACE_ID
#include <iostream>

#include "google/rpc/error_details.pb.h"
#include "segment_audiences/client.h"

namespace v1 = segment::audiences::v1;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: consumer HOST:PORT SPACE_ID\n";
    return 2;
  }
  segment_audiences::ClientOptions options;
  options.address = argv[1];
  options.timeout = absl::Seconds(10);
  segment_audiences::Client client(options);

  v1::CreateAudienceRequest create;
  create.set_space_id(argv[2]);
  create.mutable_audience()->set_name("From the consumer project");
  create.mutable_audience()->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  create.mutable_audience()->mutable_definition()->set_query("trait('vip') = true");
  auto created = client.CreateAudience(create);
  if (!created.ok()) {
    std::cerr << segment_audiences::FormatError(created.status());
    return 1;
  }
  v1::ListAudiencesRequest list;
  list.set_space_id(argv[2]);
  list.mutable_pagination()->set_count(1);
  auto all = client.ListAllAudiences(list);
  if (!all.ok()) {
    std::cerr << segment_audiences::FormatError(all.status());
    return 1;
  }
  v1::GetAudienceRequest missing;
  missing.set_space_id(argv[2]);
  missing.set_id("aud_missing");
  auto got = client.GetAudience(missing);
  google::rpc::BadRequest unused;  // The google.rpc messages are part of the package.
  std::cout << "created " << created->audience().id() << "\n"
            << "listed " << all->size() << "\n"
            << "missing " << absl::StatusCodeToString(got.status().code()) << "\n";
  return 0;
}
