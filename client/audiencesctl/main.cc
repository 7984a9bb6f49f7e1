// audiencesctl: a command-line client of audiences-gateway.
//
//   audiencesctl [flags] call RPC ['{proto3 JSON}' | -f FILE | -]   call any RPC
//   audiencesctl [flags] rpcs                                        list the RPCs
//
// Requests and responses are proto3 JSON (the same as grpcurl's). The message types are compiled
// in, so no .proto file or reflection is needed.
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "segment/audiences/v1/audiences.grpc.pb.h"

ABSL_FLAG(std::string, addr, "",
          "Gateway address host:port (default: $AUDIENCES_GATEWAY_ADDR, else localhost:50051).");
ABSL_FLAG(std::string, workspace, "", "Workspace name, sent as x-segment-workspace metadata.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Deadline of the call.");

namespace {

using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonPrintOptions;

constexpr char kService[] = "segment.audiences.v1.AudiencesService";

// Exit codes: 0 ok, 1 usage; one per class of gRPC status.
int ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 0;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 2;
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
      return 3;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return 4;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 5;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      return 6;
    default:
      return 7;
  }
}

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

void PrintError(const grpc::Status& status) {
  std::cerr << "Error: " << CodeName(status.error_code()) << ": " << status.error_message()
            << "\n";
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) return;
  for (const auto& any : details.details()) {
    google::rpc::BadRequest bad;
    google::rpc::RetryInfo retry;
    google::rpc::QuotaFailure quota;
    if (any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations()) {
        std::cerr << "  field " << v.field() << ": " << v.description() << "\n";
      }
    } else if (any.UnpackTo(&retry)) {
      std::cerr << "  retry after "
                << absl::FormatDuration(absl::Seconds(retry.retry_delay().seconds()) +
                                        absl::Nanoseconds(retry.retry_delay().nanos()))
                << "\n";
    } else if (any.UnpackTo(&quota)) {
      for (const auto& v : quota.violations()) {
        std::cerr << "  quota " << v.subject() << ": " << v.description() << "\n";
      }
    }
  }
}

int Usage(const std::string& message) {
  std::cerr << "audiencesctl: " << message << "\n"
            << "Usage: audiencesctl [--addr=HOST:PORT] [--workspace=NAME] [--timeout=30s] "
               "call RPC ['{json}' | -f FILE | -]\n"
            << "       audiencesctl rpcs\n"
            << "Example: audiencesctl call ListAudiences "
               "'{\"spaceId\":\"9aQ1Lj62S4bomZKLF4DPqW\",\"pagination\":{\"count\":10}}'\n";
  return 1;
}

int ListRpcs() {
  const auto* service = segment::audiences::v1::GetAudienceRequest::descriptor()->file()->FindServiceByName("AudiencesService");
  for (int i = 0; i < service->method_count(); ++i) {
    std::cout << service->method(i)->name() << "\n";
  }
  return 0;
}

int Call(const std::string& rpc, const std::string& json) {
  const auto* service = segment::audiences::v1::GetAudienceRequest::descriptor()->file()->FindServiceByName("AudiencesService");
  const auto* method = service->FindMethodByName(rpc);
  if (method == nullptr) return Usage(absl::StrCat("unknown RPC '", rpc, "'; see 'audiencesctl rpcs'"));
  auto* factory = google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<google::protobuf::Message> request(
      factory->GetPrototype(method->input_type())->New());
  std::unique_ptr<google::protobuf::Message> response(
      factory->GetPrototype(method->output_type())->New());
  JsonParseOptions parse;
  auto parsed = google::protobuf::util::JsonStringToMessage(json.empty() ? "{}" : json,
                                                            request.get(), parse);
  if (!parsed.ok()) {
    return Usage(absl::StrCat("the request is not valid proto3 JSON for ",
                              method->input_type()->full_name(), ": ", parsed.ToString()));
  }

  std::string addr = absl::GetFlag(FLAGS_addr);
  if (addr.empty()) {
    const char* env = std::getenv("AUDIENCES_GATEWAY_ADDR");
    addr = env != nullptr && *env != '\0' ? env : "localhost:50051";
  }
  auto channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
  std::string workspace = absl::GetFlag(FLAGS_workspace);
  if (!workspace.empty()) context.AddMetadata("x-segment-workspace", workspace);

  std::string bytes = request->SerializeAsString();
  grpc::Slice slice(bytes);
  grpc::ByteBuffer in(&slice, 1);
  grpc::ByteBuffer out;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, absl::StrCat("/", kService, "/", rpc), grpc::StubOptions(), &in, &out,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    PrintError(status);
    return ExitCodeFor(status.error_code());
  }
  std::vector<grpc::Slice> slices;
  std::string raw;
  if (out.Dump(&slices).ok()) {
    for (const auto& s : slices) raw.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (!response->ParseFromString(raw)) {
    std::cerr << "Error: the gateway's answer does not parse as "
              << method->output_type()->full_name() << "\n";
    return 7;
  }
  JsonPrintOptions print;
  print.add_whitespace = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(*response, &text, print);
  std::cout << text;
  if (text.empty() || text.back() != '\n') std::cout << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Command-line client of audiences-gateway.\n"
      "  audiencesctl call RPC ['{json}' | -f FILE | -]   call an RPC with a proto3 JSON request\n"
      "  audiencesctl rpcs                                list the RPCs");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Usage("missing command");
  std::string command = args[1];
  if (command == "rpcs") return ListRpcs();
  if (command != "call") return Usage(absl::StrCat("unknown command '", command, "'"));
  if (args.size() < 3) return Usage("call needs an RPC name");
  std::string json;
  if (args.size() >= 4) {
    std::string arg = args[3];
    if (arg == "-" || arg == "-f") {
      std::istream* in = &std::cin;
      std::ifstream file;
      if (arg == "-f") {
        if (args.size() < 5) return Usage("-f needs a file name");
        file.open(args[4]);
        if (!file) return Usage(absl::StrCat("cannot read ", args[4]));
        in = &file;
      }
      json.assign(std::istreambuf_iterator<char>(*in), std::istreambuf_iterator<char>());
    } else {
      json = arg;
    }
  }
  return Call(args[2], json);
}
