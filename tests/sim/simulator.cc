#include "simulator.h"

#include <httplib.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "operations.h"
#include "store.h"
#include "validation.h"

namespace sim {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr size_t kLogCapacity = 1000;
constexpr size_t kLogBodyBytes = 64 * 1024;

std::string Dump(const ordered_json& j) {
  return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

// Space ids: 1..64 characters of [A-Za-z0-9._-] (Segment's look like 9aQ1Lj62S4bomZKLF4DPqW).
bool ValidSpaceId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

// All values of header `name`, joined with ", ".
std::string HeaderValues(const httplib::Request& req, const std::string& name) {
  std::vector<std::string> values;
  auto range = req.headers.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) values.push_back(it->second);
  return absl::StrJoin(values, ", ");
}

// The media type of a Content-Type/Accept element, lowercased, without parameters.
std::string BareMediaType(absl::string_view value) {
  const size_t semi = value.find(';');
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(value.substr(0, semi)));
}

// Server-driven negotiation: the first of op.accept (server-preferred order) that the Accept
// header allows. The most specific matching range decides (exact > type/* > */*); q=0 refuses.
// No (or an empty) Accept header means the first listed type.
std::optional<absl::string_view> NegotiateAccept(const httplib::Request& req, const Operation& op) {
  const std::string accept = HeaderValues(req, "Accept");
  if (absl::StripAsciiWhitespace(accept).empty()) return op.accept.front();
  struct Range {
    std::string type;
    double q;
  };
  std::vector<Range> ranges;
  for (absl::string_view element : absl::StrSplit(accept, ',')) {
    if (absl::StripAsciiWhitespace(element).empty()) continue;
    Range range{BareMediaType(element), 1.0};
    std::vector<absl::string_view> params = absl::StrSplit(element, ';');
    for (size_t i = 1; i < params.size(); ++i) {
      absl::string_view p = absl::StripAsciiWhitespace(params[i]);
      if (absl::StartsWithIgnoreCase(p, "q=")) {
        double q = 1.0;
        if (absl::SimpleAtod(p.substr(2), &q)) range.q = q;
      }
    }
    ranges.push_back(std::move(range));
  }
  for (absl::string_view offered : op.accept) {
    const absl::string_view main_type = offered.substr(0, offered.find('/'));
    int best_specificity = 0;
    double best_q = 0;
    for (const Range& r : ranges) {
      int specificity = 0;
      if (r.type == offered) {
        specificity = 3;
      } else if (r.type == absl::StrCat(main_type, "/*")) {
        specificity = 2;
      } else if (r.type == "*/*") {
        specificity = 1;
      }
      if (specificity > best_specificity) {
        best_specificity = specificity;
        best_q = r.q;
      }
    }
    if (best_specificity > 0 && best_q > 0) return offered;
  }
  return std::nullopt;
}

bool HasBody(const httplib::Request& req) {
  if (absl::StrContains(absl::AsciiStrToLower(HeaderValues(req, "Transfer-Encoding")), "chunked")) {
    return true;
  }
  const std::string length = req.get_header_value("Content-Length");
  return !length.empty() && absl::StripAsciiWhitespace(length) != "0";
}

// A stable per-token user id for createdBy/updatedBy.
std::string UserIdForToken(absl::string_view token) {
  constexpr absl::string_view kAlphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::mt19937_64 rng(std::hash<std::string>{}(std::string(token)));
  std::string id;
  for (int i = 0; i < 26; ++i) id.push_back(kAlphabet[rng() % kAlphabet.size()]);
  return id;
}

Result TooManyRequests(absl::string_view message, absl::Duration wait, int64_t consumed) {
  ordered_json data = ordered_json::object();
  data["remainingPoints"] = 0;
  data["msBeforeNext"] =
      std::max<int64_t>(0, absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
  data["consumedPoints"] = consumed;
  ordered_json error = ordered_json::object();
  error["type"] = std::string(kErrorRateLimited);
  error["message"] = std::string(message);
  error["data"] = std::move(data);
  ordered_json body = ordered_json::object();
  body["errors"] = ordered_json::array({error});
  return {429, std::move(body)};
}

}  // namespace

class Simulator::Impl {
 public:
  explicit Impl(SimulatorOptions options)
      : options_(std::move(options)),
        store_(options_.preview_duration),
        faults_(options_.faults),
        token_(options_.token) {
    for (const Operation& op : AllOperations()) by_operation_[std::string(op.rpc)] = 0;
  }

  ~Impl() { Stop(); }

  absl::Status Start() {
    if (started_) return absl::FailedPreconditionError("segment-sim: already started");
    if (absl::Status valid = options_.faults.Validate(); !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("segment-sim: ", valid.message()));
    }
    const int threads = std::max(1, options_.threads);
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server_.set_payload_max_length(options_.max_body_bytes);
    server_.set_keep_alive_max_count(1000);
    // httplib writes headers and body separately: without TCP_NODELAY, Nagle + delayed ACKs
    // add ~40 ms to every answer on a kept-alive connection.
    server_.set_tcp_nodelay(true);
    // Replaces httplib's default (SO_REUSEPORT, which would let two simulators share a port
    // silently) and remembers the listening socket to raise its backlog below.
    server_.set_socket_options([this](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listen_socket_ = sock;
    });
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      // Requests without a body are answered here, before httplib tries to read one (it
      // would wait for EOF on a POST without Content-Length).
      if (HasBody(req)) return httplib::Server::HandlerResponse::Unhandled;
      Serve(req, req.body, res);
      return httplib::Server::HandlerResponse::Handled;
    });
    const httplib::Server::Handler handler =
        [this](const httplib::Request& req, httplib::Response& res) { Serve(req, req.body, res); };
    // Bodies are read through a ContentReader so that the size limit holds for chunked bodies
    // too (httplib enforces payload_max_length only with Content-Length).
    const httplib::Server::HandlerWithContentReader reading_handler =
        [this](const httplib::Request& req, httplib::Response& res,
               const httplib::ContentReader& content_reader) {
          ReadAndServe(req, res, content_reader);
        };
    const std::string any = "[\\s\\S]*";
    server_.Get(any, handler);
    server_.Options(any, handler);
    server_.Post(any, reading_handler);
    server_.Put(any, reading_handler);
    server_.Patch(any, reading_handler);
    server_.Delete(any, reading_handler);
    server_.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
          return OnHttpError(req, res);
        }));
    server_.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          const Result r = ErrorResult(500, kErrorServer, "internal simulator error");
          res.status = 500;
          res.set_content(Dump(r.body), "application/json");
        });

    if (options_.port == 0) {
      port_ = server_.bind_to_any_port(options_.host);
      if (port_ <= 0) {
        port_ = 0;
        return absl::UnavailableError(
            absl::StrCat("segment-sim: cannot bind ", options_.host, ":0"));
      }
    } else {
      errno = 0;
      if (!server_.bind_to_port(options_.host, options_.port)) {
        // httplib closes the socket after a failed bind(); errno still tells why.
        const char* why = errno == EADDRINUSE ? ": address already in use" : "";
        return absl::UnavailableError(
            absl::StrCat("segment-sim: cannot bind ", options_.host, ":", options_.port, why));
      }
      port_ = options_.port;
    }
    // httplib listens with a backlog of 5: a burst of new connections (a client pool warming
    // up) would see SYNs dropped and retried after 1 s. Linux lets listen() raise it.
    if (listen_socket_ != INVALID_SOCKET) ::listen(listen_socket_, SOMAXCONN);
    started_ = true;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // The socket already listens (connections queue); also wait for the accept loop, so that
    // a Stop() right after Start() cannot miss it.
    WaitUntilRunning();
    return absl::OkStatus();
  }

  void Stop() {
    if (!started_) return;
    WaitUntilRunning();
    server_.stop();
    if (thread_.joinable()) thread_.join();
    started_ = false;
  }

  int port() const { return port_; }
  const std::string& host() const { return options_.host; }

  void Reset() {
    {
      absl::MutexLock lock(&token_mu_);
      token_ = options_.token;
    }
    store_.Clear();
    limiter_.Clear();
    monthly_.Clear();
    faults_.ResetCounts();
    absl::MutexLock lock(&stats_mu_);
    requests_ = 0;
    for (auto& [name, n] : by_operation_) n = 0;
    status_429_ = 0;
    unrouted_ = 0;
    by_status_.clear();
    log_.clear();
  }

  std::string StatsJson() const {
    absl::MutexLock lock(&stats_mu_);
    ordered_json j = ordered_json::object();
    j["requests"] = requests_;
    ordered_json ops = ordered_json::object();
    for (const auto& [name, n] : by_operation_) ops[name] = n;
    j["by_operation"] = std::move(ops);
    j["status_429"] = status_429_;
    j["unrouted"] = unrouted_;
    ordered_json statuses = ordered_json::object();
    for (const auto& [status, n] : by_status_) statuses[std::to_string(status)] = n;
    j["by_status"] = std::move(statuses);
    const FaultCounts faults = faults_.Counts();
    ordered_json f = ordered_json::object();
    f["5xx"] = faults.error_5xx;
    f["5xx_after"] = faults.error_5xx_after;
    f["reset"] = faults.reset;
    f["malformed"] = faults.malformed;
    f["latency"] = faults.latency;
    j["faults"] = std::move(f);
    return Dump(j);
  }

 private:
  void WaitUntilRunning() {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!server_.is_running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  }

  absl::Time Now() const { return options_.clock ? options_.clock() : absl::Now(); }

  void ReadAndServe(const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& content_reader) {
    std::string body;
    bool too_large = false;
    const httplib::ContentReceiver receiver = [&](const char* data, size_t length) {
      if (body.size() + length > options_.max_body_bytes) {
        too_large = true;
        return false;
      }
      body.append(data, length);
      return true;
    };
    // No operation takes multipart bodies (they end 415/404), but they must be read as such.
    const bool read =
        req.is_multipart_form_data()
            ? content_reader([](const httplib::MultipartFormData&) { return true; }, receiver)
            : content_reader(receiver);
    if (read && !too_large) {
      Serve(req, body, res);
      return;
    }
    // The rest of the body is unread: answer and close the connection.
    const int status = too_large || res.status == 413 ? 413 : 400;
    const Result r = status == 413 ? ErrorResult(413, kErrorPayloadTooLarge,
                                                 absl::StrCat("request body larger than ",
                                                              options_.max_body_bytes, " bytes"))
                                   : ErrorResult(400, kErrorBadRequest, "malformed request body");
    res.status = status;
    if (req.get_header_value("Connection") != "close") res.set_header("Connection", "close");
    res.set_content(Dump(r.body), "application/json");
    const absl::string_view target = req.target;
    const size_t question = target.find('?');
    absl::MutexLock lock(&stats_mu_);
    LogLocked(
        req, body, target.substr(0, question),
        question == absl::string_view::npos ? absl::string_view() : target.substr(question + 1),
        nullptr, status);
  }

  void Serve(const httplib::Request& req, const std::string& body, httplib::Response& res) {
    const absl::string_view target = req.target;
    const size_t question = target.find('?');
    const absl::string_view raw_path = target.substr(0, question);
    const absl::string_view raw_query =
        question == absl::string_view::npos ? absl::string_view() : target.substr(question + 1);

    if (raw_path == "/__sim/stats" && req.method == "GET") {
      res.status = 200;
      res.set_content(StatsJson(), "application/json");
      return;
    }
    if (raw_path == "/__sim/requests" && req.method == "GET") {
      res.status = 200;
      res.set_content(RequestLogJson(), "application/json");
      return;
    }
    if (raw_path == "/__sim/token" && req.method == "POST") {
      SetToken(body, res);
      return;
    }
    if (raw_path == "/__sim/reset" && req.method == "POST") {
      Reset();
      res.status = 200;
      res.set_content("{\"reset\":true}", "application/json");
      return;
    }

    const std::optional<Route> route = MatchRoute(req.method, raw_path);
    if (!route) {
      const Result r = ErrorResult(404, kErrorNotFound,
                                   absl::StrCat("no such operation: ", req.method, " ", raw_path));
      res.status = r.status;
      res.set_content(Dump(r.body), "application/json");
      absl::MutexLock lock(&stats_mu_);
      ++unrouted_;
      LogLocked(req, body, raw_path, raw_query, nullptr, r.status);
      return;
    }
    ServeOperation(req, body, res, *route, raw_path, raw_query);
  }

  void ServeOperation(const httplib::Request& req, const std::string& body, httplib::Response& res,
                      const Route& route, absl::string_view raw_path, absl::string_view raw_query) {
    const Operation& op = *route.op;
    {
      absl::MutexLock lock(&stats_mu_);
      ++requests_;
      ++by_operation_[std::string(op.rpc)];
    }
    if (options_.latency > absl::ZeroDuration()) absl::SleepFor(options_.latency);
    if (const absl::Duration extra = faults_.DrawLatency(op.rpc); extra > absl::ZeroDuration()) {
      absl::SleepFor(extra);
    }
    const absl::Time now = Now();

    const std::optional<absl::string_view> media = NegotiateAccept(req, op);
    const std::string content_type(media ? *media : absl::string_view("application/json"));
    std::optional<RateDecision> decision;
    Result result;
    std::string token;
    absl::string_view fault;  // The injected fault, if any ("5xx", "reset", ...).
    if (Authenticate(req, &token, &result)) {
      decision = limiter_.Consume(absl::StrCat(token, "\n", op.rpc),
                                  options_.rate_limits.For(op.rpc), now);
      const std::string& space = route.params.at("spaceId");
      int fault_status = 0;
      if (!decision->allowed) {
        result = TooManyRequests("Too many requests", decision->reset - now, decision->consumed);
      } else if (!CheckMonthlyQuota(op, space, now, &result)) {
        // result set
      } else if ((fault_status = faults_.Draw5xx(op.rpc)) != 0) {
        fault = "5xx";
        result = ErrorResult(fault_status, kErrorServer,
                             fault_status == 500
                                 ? "Internal Server Error (segment-sim injected fault; nothing "
                                   "was executed)"
                                 : "Service Unavailable (segment-sim injected fault; nothing "
                                   "was executed)");
      } else if (faults_.DrawReset(op.rpc)) {
        fault = "reset";
        result.status = 200;
      } else if (!media) {
        result = ErrorResult(406, kErrorNotAcceptable,
                             absl::StrCat("Accept allows none of the media types ", op.rpc,
                                          " produces: ", absl::StrJoin(op.accept, ", ")));
      } else if (op.has_body && !ContentTypeOk(req, op)) {
        result = ErrorResult(415, kErrorUnsupportedMediaType,
                             absl::StrCat("Content-Type \"", req.get_header_value("Content-Type"),
                                          "\" is not accepted by ", op.rpc, "; use one of ",
                                          absl::StrJoin(op.content_types, ", ")));
      } else {
        result = Dispatch(route, raw_query, body, UserIdForToken(token), now);
        const bool succeeded = result.status >= 200 && result.status <= 299;
        if (succeeded && faults_.Draw5xxAfter(op.rpc)) {
          fault = "5xx_after";
          result = ErrorResult(500, kErrorServer,
                               "Internal Server Error (segment-sim injected fault after the "
                               "operation was executed)");
        } else if (succeeded && faults_.DrawMalformed(op.rpc)) {
          fault = "malformed";
        }
      }
    }

    res.status = result.status;
    if (decision) {
      res.set_header("X-RateLimit-Consumed", std::to_string(decision->consumed));
      res.set_header("X-RateLimit-Remaining", std::to_string(decision->remaining));
      res.set_header("X-RateLimit-Reset", FormatHttpDateCeil(decision->reset));
    }
    if (fault == "reset") {
      // Announce more than is sent, then give up: httplib closes the connection when the
      // content provider fails, so the client sees a truncated transfer.
      const std::string sent = "{\"data\":{";
      res.set_content_provider(sent.size() + 4096, content_type,
                               [sent](size_t offset, size_t, httplib::DataSink& sink) {
                                 if (offset == 0) sink.write(sent.data(), sent.size());
                                 return false;
                               });
    } else if (fault == "malformed") {
      std::string text = Dump(result.body);
      text.resize(faults_.DrawCut(text.size()));
      res.set_content(text, content_type);
    } else {
      res.set_content(Dump(result.body), content_type);
    }

    absl::MutexLock lock(&stats_mu_);
    // An aborted answer has no status the client could see: it is counted in faults.reset only.
    if (fault != "reset") ++by_status_[result.status];
    if (result.status == 429) ++status_429_;
    LogLocked(req, body, raw_path, raw_query, &route, result.status, fault);
  }

  // POST /__sim/token {"token":"T"}: from now on only T is accepted ("" accepts any); the token
  // that was accepted until then is revoked, as when a workspace owner deletes it in Segment.
  void SetToken(const std::string& body, httplib::Response& res) {
    const ordered_json j = ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("token") || !j["token"].is_string()) {
      res.status = 400;
      res.set_content(R"({"error":"expected {\"token\":\"...\"}"})", "application/json");
      return;
    }
    {
      absl::MutexLock lock(&token_mu_);
      token_ = j["token"].get<std::string>();
    }
    res.status = 200;
    res.set_content(R"({"token_set":true})", "application/json");
  }

  // True when the request carries an acceptable bearer token (in *token); otherwise fills
  // *result with a 401.
  bool Authenticate(const httplib::Request& req, std::string* token, Result* result) const {
    if (!req.has_header("Authorization")) {
      *result = ErrorResult(401, kErrorUnauthorized,
                            "missing Authorization header (expected: Bearer <token>)");
      return false;
    }
    const std::string header = HeaderValues(req, "Authorization");
    const absl::string_view value = absl::StripAsciiWhitespace(header);
    constexpr absl::string_view kScheme = "bearer ";
    if (!absl::StartsWithIgnoreCase(value, kScheme) ||
        absl::StripAsciiWhitespace(value.substr(kScheme.size())).empty()) {
      *result =
          ErrorResult(401, kErrorUnauthorized, "the Authorization header must be: Bearer <token>");
      return false;
    }
    *token = std::string(absl::StripAsciiWhitespace(value.substr(kScheme.size())));
    absl::MutexLock lock(&token_mu_);
    if (!token_.empty() && *token != token_) {
      *result = ErrorResult(401, kErrorUnauthorized, "invalid token");
      return false;
    }
    return true;
  }

  // CreateAudiencePreview: at most preview_monthly_quota per space and UTC calendar month.
  bool CheckMonthlyQuota(const Operation& op, const std::string& space, absl::Time now,
                         Result* result) {
    if (op.id != OpId::kCreateAudiencePreview || !ValidSpaceId(space)) return true;
    absl::Time start;
    absl::Time end;
    UtcMonth(now, &start, &end);
    const RateDecision d =
        monthly_.ConsumeInWindow(space, options_.preview_monthly_quota, start, end, now);
    if (d.allowed) return true;
    *result = TooManyRequests(
        absl::StrCat("Too many requests: the monthly quota of ", options_.preview_monthly_quota,
                     " CreateAudiencePreview requests for space ", space,
                     " is reached; it resets at the start of next month (UTC)"),
        end - now, d.consumed);
    return false;
  }

  static bool ContentTypeOk(const httplib::Request& req, const Operation& op) {
    if (!req.has_header("Content-Type")) return false;
    const std::string type = BareMediaType(req.get_header_value("Content-Type"));
    return std::find(op.content_types.begin(), op.content_types.end(), type) !=
           op.content_types.end();
  }

  Result Dispatch(const Route& route, absl::string_view raw_query, const std::string& body,
                  const std::string& user, absl::Time now) {
    const Operation& op = *route.op;
    const std::string& space = route.params.at("spaceId");
    if (!ValidSpaceId(space)) {
      return ErrorResult(404, kErrorNotFound, absl::StrCat("space ", space, " not found"));
    }
    auto param = [&](const char* name) {
      auto it = route.params.find(name);
      return it == route.params.end() ? std::string() : it->second;
    };
    const std::string id =
        op.id == OpId::kForceExecuteAudienceRun ? param("audienceId") : param("id");
    const std::string schedule_id = param("scheduleId");

    FieldErrors errors;
    const QueryParams all_params = ParseQuery(raw_query);
    CheckQueryNames(all_params, op, &errors);
    QueryParams query;
    for (const auto& p : all_params) {
      if (std::find(op.query_params.begin(), op.query_params.end(), p.first) !=
          op.query_params.end()) {
        query.push_back(p);
      }
    }
    ListQuery list;
    bool include_schedules = false;
    if (op.id == OpId::kListAudiences) {
      list = ParseListQuery(query, 200, &errors);
    } else if (op.id == OpId::kListAudienceConsumersFromSpaceAndAudience) {
      list = ParseListQuery(query, 1000, &errors);
    } else if (op.id == OpId::kGetAudience) {
      include_schedules = ParseInclude(query, &errors);
    }
    std::optional<json> input;
    if (op.has_body) {
      const size_t before = errors.size();
      input = ParseJsonObject(body, &errors);
      if (input) {
        switch (op.id) {
          case OpId::kCreateAudience:
            ValidateCreateAudienceInput(*input, &errors);
            break;
          case OpId::kUpdateAudienceForSpace:
            ValidateUpdateAudienceForSpaceInput(*input, &errors);
            break;
          case OpId::kCreateAudiencePreview:
            ValidateCreateAudiencePreviewBetaInput(*input, &errors);
            break;
          default:
            ValidateAudienceScheduleInput(*input, &errors);
            break;
        }
      }
      if (errors.size() != before) input.reset();
    }
    if (!errors.empty()) return ValidationResult(errors);

    switch (op.id) {
      case OpId::kCreateAudience:
        return store_.CreateAudience(space, *input, user, now);
      case OpId::kGetAudience:
        return store_.GetAudience(space, id, include_schedules, now);
      case OpId::kListAudiences:
        return store_.ListAudiences(space, list, now);
      case OpId::kUpdateAudienceForSpace:
        return store_.UpdateAudience(space, id, *input, user, now);
      case OpId::kRemoveAudienceFromSpace:
        return store_.RemoveAudience(space, id);
      case OpId::kListAudienceConsumersFromSpaceAndAudience:
        return store_.ListConsumers(space, id, list);
      case OpId::kAddAudienceScheduleToAudience:
        return store_.AddSchedule(space, id, *input, now);
      case OpId::kGetAudienceScheduleFromSpaceAndAudience:
        return store_.GetSchedule(space, id, schedule_id, now);
      case OpId::kListAudienceSchedulesFromSpaceAndAudience:
        return store_.ListSchedules(space, id, now);
      case OpId::kUpdateAudienceScheduleForAudience:
        return store_.UpdateSchedule(space, id, schedule_id, *input, now);
      case OpId::kRemoveAudienceScheduleFromAudience:
        return store_.RemoveSchedule(space, id, schedule_id);
      case OpId::kForceExecuteAudienceRun:
        return store_.ForceRun(space, id);
      case OpId::kCreateAudiencePreview:
        return store_.CreatePreview(space, *input, now);
      case OpId::kGetAudiencePreview:
        return store_.GetPreview(space, id, now);
    }
    return ErrorResult(500, kErrorServer, "unhandled operation");
  }

  // Errors httplib produces itself (malformed request 400, body too large 413, URI too long
  // 414, ...): give them an error envelope too.
  httplib::Server::HandlerResponse OnHttpError(const httplib::Request& req,
                                               httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    absl::string_view type = kErrorBadRequest;
    std::string message = "malformed HTTP request";
    switch (res.status) {
      case 404:
        type = kErrorNotFound;
        message = absl::StrCat("no such operation: ", req.method, " ", req.target);
        break;
      case 413:
        type = kErrorPayloadTooLarge;
        message = absl::StrCat("request body larger than ", options_.max_body_bytes, " bytes");
        break;
      case 414:
        message = "request URI too long";
        break;
      default:
        if (res.status >= 500) {
          type = kErrorServer;
          message = "internal simulator error";
        }
        break;
    }
    const Result r = ErrorResult(res.status, type, message);
    res.set_content(Dump(r.body), "application/json");
    const absl::string_view target = req.target;
    const size_t question = target.find('?');
    absl::MutexLock lock(&stats_mu_);
    if (res.status == 404) ++unrouted_;
    LogLocked(
        req, req.body, target.substr(0, question),
        question == absl::string_view::npos ? absl::string_view() : target.substr(question + 1),
        nullptr, res.status);
    return httplib::Server::HandlerResponse::Handled;
  }

  void LogLocked(const httplib::Request& req, const std::string& body, absl::string_view raw_path,
                 absl::string_view raw_query, const Route* route, int status,
                 absl::string_view fault = "") ABSL_EXCLUSIVE_LOCKS_REQUIRED(stats_mu_) {
    ordered_json entry = ordered_json::object();
    entry["time"] = FormatRfc3339(Now());
    entry["method"] = req.method;
    entry["path"] = std::string(raw_path);
    entry["target"] = req.target;
    ordered_json params = ordered_json::object();
    if (route != nullptr) {
      for (const auto& [name, value] : route->params) params[name] = value;
    }
    entry["path_params"] = std::move(params);
    ordered_json query = ordered_json::object();
    for (const auto& [name, value] : ParseQuery(raw_query)) {
      if (!query.contains(name)) {
        query[name] = value;
      } else {
        if (!query[name].is_array()) query[name] = ordered_json::array({query[name]});
        query[name].push_back(value);
      }
    }
    entry["query"] = std::move(query);
    ordered_json headers = ordered_json::object();
    for (const auto& [name, value] : req.headers) {
      // httplib adds the peer's address as pseudo headers; they were not received.
      if (name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
          name == "LOCAL_PORT") {
        continue;
      }
      std::string shown = value;
      if (absl::EqualsIgnoreCase(name, "Authorization")) {
        shown = absl::StartsWithIgnoreCase(absl::StripLeadingAsciiWhitespace(value), "bearer")
                    ? "Bearer ***"
                    : "***";
      }
      if (headers.contains(name)) {
        headers[name] = absl::StrCat(headers[name].get<std::string>(), ", ", shown);
      } else {
        headers[name] = shown;
      }
    }
    entry["headers"] = std::move(headers);
    if (body.size() > kLogBodyBytes) {
      entry["body"] = body.substr(0, kLogBodyBytes);
      entry["body_truncated"] = true;
    } else {
      entry["body"] = body;
    }
    entry["operation"] =
        route != nullptr ? ordered_json(std::string(route->op->rpc)) : ordered_json(nullptr);
    entry["status"] = status;
    if (!fault.empty()) entry["fault"] = std::string(fault);
    log_.push_back(std::move(entry));
    while (log_.size() > kLogCapacity) log_.pop_front();
  }

  std::string RequestLogJson() const {
    absl::MutexLock lock(&stats_mu_);
    ordered_json list = ordered_json::array();
    for (const ordered_json& entry : log_) list.push_back(entry);
    return Dump(list);
  }

  const SimulatorOptions options_;
  httplib::Server server_;
  std::thread thread_;
  bool started_ = false;
  int port_ = 0;
  socket_t listen_socket_ = INVALID_SOCKET;
  Store store_;
  FixedWindowLimiter limiter_;
  FixedWindowLimiter monthly_;
  FaultInjector faults_;

  mutable absl::Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);  // Accepted token ("" any); POST /__sim/token.

  mutable absl::Mutex stats_mu_;
  int64_t requests_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::map<std::string, int64_t> by_operation_ ABSL_GUARDED_BY(stats_mu_);
  int64_t status_429_ ABSL_GUARDED_BY(stats_mu_) = 0;
  int64_t unrouted_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::map<int, int64_t> by_status_ ABSL_GUARDED_BY(stats_mu_);
  std::deque<ordered_json> log_ ABSL_GUARDED_BY(stats_mu_);
};

Simulator::Simulator(SimulatorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

Simulator::~Simulator() = default;

absl::Status Simulator::Start() { return impl_->Start(); }

int Simulator::port() const { return impl_->port(); }

const std::string& Simulator::host() const { return impl_->host(); }

void Simulator::Stop() { impl_->Stop(); }

void Simulator::Reset() { impl_->Reset(); }

std::string Simulator::StatsJson() const { return impl_->StatsJson(); }

}  // namespace sim
