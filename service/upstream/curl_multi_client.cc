#include "service/upstream/curl_multi_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sag::upstream {

absl::string_view HttpResponse::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

struct CurlMultiClient::Transfer {
  uint64_t id = 0;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  HttpRequest request;
  HttpResponse response;
  Callback done;
  size_t max_bytes = 0;
  bool too_large = false;
  char error[CURL_ERROR_SIZE] = {0};

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (header_list != nullptr) curl_slist_free_all(header_list);
  }
};

namespace {

std::once_flag g_curl_init;

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<CurlMultiClient::Transfer*>(user);
  size_t len = size * n;
  if (t->response.body.size() + len > t->max_bytes) {
    t->too_large = true;
    return 0;  // Aborts the transfer with CURLE_WRITE_ERROR.
  }
  t->response.body.append(data, len);
  return len;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<CurlMultiClient::Transfer*>(user);
  size_t len = size * n;
  absl::string_view line(data, len);
  if (line.substr(0, 5) == "HTTP/") {
    t->response.headers.clear();  // A new response (after 100 Continue, say).
    return len;
  }
  size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return len;
  std::string name = absl::AsciiStrToLower(line.substr(0, colon));
  absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  if (t->response.headers.size() < 200) t->response.headers.emplace_back(name, value);
  return len;
}

}  // namespace

CurlMultiClient::CurlMultiClient(CurlOptions options) : options_(std::move(options)) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(options_.max_host_connections));
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  multi_ = multi;
  thread_ = std::thread([this] { Loop(); });
}

CurlMultiClient::~CurlMultiClient() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
  thread_.join();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

uint64_t CurlMultiClient::Send(HttpRequest request, Callback done) {
  auto t = std::make_unique<Transfer>();
  t->id = next_id_.fetch_add(1);
  t->request = std::move(request);
  t->done = std::move(done);
  t->max_bytes = options_.max_response_bytes;
  uint64_t id = t->id;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  bool stopped;
  {
    absl::MutexLock lock(&mu_);
    stopped = stop_;
    if (!stopped) incoming_.push_back(std::move(t));
  }
  if (stopped) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    t->done(absl::CancelledError("upstream client is shutting down"));
    return id;
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
  return id;
}

void CurlMultiClient::Cancel(uint64_t handle) {
  {
    absl::MutexLock lock(&mu_);
    cancels_.push_back(handle);
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void CurlMultiClient::Start(std::unique_ptr<Transfer> t) {
  if (t->request.timeout <= absl::ZeroDuration()) {
    auto done = std::move(t->done);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    done(absl::DeadlineExceededError("no time left for the upstream request"));
    return;
  }
  CURL* e = curl_easy_init();
  t->easy = e;
  const HttpRequest& r = t->request;
  curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");  // Everything curl can decode.
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(r.timeout))));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  if (r.method == "GET") curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  if (r.has_body || r.method == "POST" || r.method == "PATCH") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
  }
  for (const auto& [k, v] : r.headers) {
    t->header_list = curl_slist_append(t->header_list, absl::StrCat(k, ": ", v).c_str());
  }
  // No "Expect: 100-continue" round trip for bodies.
  t->header_list = curl_slist_append(t->header_list, "Expect:");
  // A POST without a body (ForceExecuteAudienceRun) sends no Content-Type: curl would add a
  // form type by default.
  if (!r.has_body) t->header_list = curl_slist_append(t->header_list, "Content-Type:");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->header_list);

  uint64_t id = t->id;
  active_.emplace(id, std::move(t));
  CURLMcode rc = curl_multi_add_handle(static_cast<CURLM*>(multi_), e);
  if (rc != CURLM_OK) {
    Complete(id, absl::UnavailableError(
                     absl::StrCat("cannot start upstream request: ", curl_multi_strerror(rc))));
  }
}

void CurlMultiClient::Complete(uint64_t id, absl::StatusOr<HttpResponse> result) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  std::unique_ptr<Transfer> t = std::move(it->second);
  active_.erase(it);
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), t->easy);
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  t->done(std::move(result));
}

void CurlMultiClient::Drain(bool* stop) {
  std::deque<std::unique_ptr<Transfer>> incoming;
  std::vector<uint64_t> cancels;
  {
    absl::MutexLock lock(&mu_);
    incoming.swap(incoming_);
    cancels.swap(cancels_);
    *stop = stop_;
  }
  for (auto& t : incoming) {
    if (*stop) {
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      t->done(absl::CancelledError("upstream client is shutting down"));
      continue;
    }
    Start(std::move(t));
  }
  for (uint64_t id : cancels) Complete(id, absl::CancelledError("upstream request cancelled"));
}

void CurlMultiClient::Loop() {
  auto* multi = static_cast<CURLM*>(multi_);
  bool stop = false;
  while (true) {
    Drain(&stop);
    if (stop) break;
    int running = 0;
    curl_multi_perform(multi, &running);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      CURLcode code = msg->data.result;
      uint64_t id = t->id;
      if (code == CURLE_OK) {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->response.status);
        Complete(id, std::move(t->response));
      } else if (code == CURLE_OPERATION_TIMEDOUT) {
        Complete(id,
                 absl::DeadlineExceededError(absl::StrCat(
                     "upstream did not answer within ", absl::FormatDuration(t->request.timeout))));
      } else if (t->too_large) {
        Complete(id, absl::UnavailableError(
                         absl::StrCat("upstream response larger than ", t->max_bytes, " bytes")));
      } else {
        std::string detail = t->error[0] != '\0' ? t->error : curl_easy_strerror(code);
        Complete(id, absl::UnavailableError(absl::StrCat("upstream request failed: ", detail)));
      }
    }
    curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
  // Shutting down: fail what is still in flight.
  std::vector<uint64_t> ids;
  for (const auto& [id, t] : active_) ids.push_back(id);
  for (uint64_t id : ids) Complete(id, absl::CancelledError("upstream client is shutting down"));
}

}  // namespace sag::upstream
