// The operation table (service/operations/operation_table.h) checked row by row against the
// proto descriptors and against the API reference (tests/reference): the check its header
// promises, so that a wrong row fails here rather than against the upstream.
#include "service/operations/operation_table.h"

#include <regex>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "segment/audiences/v1/audiences.pb.h"
#include "tests/common/reference.h"

namespace sag::ops {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::MethodDescriptor;

const google::protobuf::ServiceDescriptor* Service() {
  return segment::audiences::v1::GetAudienceRequest::descriptor()->file()->FindServiceByName(
      "AudiencesService");
}

const nlohmann::json* ReferenceOperation(absl::string_view rpc) {
  for (const nlohmann::json& op : testing::Operations()) {
    if (op.value("rpc", "") == std::string(rpc)) return &op;
  }
  return nullptr;
}

const FieldDescriptor* FieldWithJsonName(const Descriptor* d, const std::string& json_name) {
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == json_name) return d->field(i);
  }
  return nullptr;
}

TEST(OperationTableTest, OneRowPerMethodOfTheService) {
  ASSERT_NE(Service(), nullptr);
  std::set<std::string> rows;
  for (const Operation& op : Operations()) {
    EXPECT_TRUE(rows.insert(std::string(op.rpc)).second) << "row twice: " << op.rpc;
    EXPECT_NE(Service()->FindMethodByName(std::string(op.rpc)), nullptr) << op.rpc;
    EXPECT_EQ(FindOperation(op.rpc), &op) << op.rpc;
  }
  EXPECT_EQ(rows.size(), static_cast<size_t>(Service()->method_count()));
  EXPECT_EQ(FindOperation("NoSuchRpc"), nullptr);
}

TEST(OperationTableTest, EveryRowMatchesTheReference) {
  ASSERT_EQ(testing::Operations().size(), Operations().size());
  for (const Operation& op : Operations()) {
    SCOPED_TRACE(std::string(op.rpc));
    const nlohmann::json* ref = ReferenceOperation(op.rpc);
    ASSERT_NE(ref, nullptr);
    EXPECT_EQ(std::string(HttpMethodName(op.method)), ref->value("method", ""));
    EXPECT_EQ(std::string(op.path), ref->value("path", ""));
    EXPECT_EQ(std::string(op.accept), (*ref)["accept"].at(0).get<std::string>());
    const bool has_body = (*ref)["body"].is_string();
    EXPECT_EQ(!op.body_field.empty(), has_body);
    if (has_body) {
      EXPECT_EQ(std::string(op.content_type), (*ref)["content_type"].at(0).get<std::string>());
    }
  }
}

TEST(OperationTableTest, PathParametersAndBodyAreRequestFields) {
  const std::regex param("\\{([A-Za-z]+)\\}");
  for (const Operation& op : Operations()) {
    SCOPED_TRACE(std::string(op.rpc));
    const MethodDescriptor* m = Service()->FindMethodByName(std::string(op.rpc));
    ASSERT_NE(m, nullptr);
    const Descriptor* request = m->input_type();
    std::string path(op.path);
    for (std::sregex_iterator it(path.begin(), path.end(), param), end; it != end; ++it) {
      const FieldDescriptor* f = FieldWithJsonName(request, (*it)[1].str());
      ASSERT_NE(f, nullptr) << "no request field for " << (*it)[0].str();
      EXPECT_EQ(f->type(), FieldDescriptor::TYPE_STRING) << f->name();
    }
    if (!op.body_field.empty()) {
      const FieldDescriptor* body = request->FindFieldByName(std::string(op.body_field));
      ASSERT_NE(body, nullptr) << op.body_field;
      EXPECT_EQ(body->type(), FieldDescriptor::TYPE_MESSAGE);
    }
  }
}

TEST(OperationTableTest, RetryCacheAndInvalidationRulesAreConsistent) {
  for (const Operation& op : Operations()) {
    SCOPED_TRACE(std::string(op.rpc));
    const bool read = op.method == HttpMethod::kGet;
    EXPECT_EQ(op.idempotent, read) << "only reads may be sent twice";
    if (op.cacheable) {
      EXPECT_TRUE(read);
    }
    if (read) {
      EXPECT_TRUE(op.invalidates.empty()) << "a read makes nothing stale";
    }
    for (absl::string_view listing : op.invalidates) {
      const Operation* target = FindOperation(listing);
      ASSERT_NE(target, nullptr) << listing;
      EXPECT_TRUE(target->cacheable) << listing;
    }
    EXPECT_GE(op.limit.requests, 0);
    EXPECT_GE(op.max_page_count, 0);
  }
}

}  // namespace
}  // namespace sag::ops
